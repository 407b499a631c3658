"""The playbook commands' contracts on the session stack: Prometheus down, --dry-run changing
nothing, confirmation, the lock, not-firing refusal, watch, and the --json shapes."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import httpx

from chaosctl.playbook.guard import RemediationGuard
from tests.support import free_port, wait_for


def chaos_value(stack: Any, service: str, fault: str) -> Any:
    config = httpx.get(f"{stack.url(service)}/chaos/config", timeout=10).json()
    return config["faults"][fault]["value"]


def set_lock_contention(stack: Any) -> None:
    response = httpx.post(f"{stack.url('inventory')}/chaos/config",
                          headers=stack.admin_headers(),
                          json={"lock_contention_ms": 250, "ttl_s": 120}, timeout=10)
    assert response.status_code == 200, response.text


def test_prometheus_down_exits_2_and_reports_direct_checks(clean_chaos: Any) -> None:
    stack = clean_chaos
    set_lock_contention(stack)
    env = {**stack.env, "CHAOSCTL_PROMETHEUS_PORT": str(free_port())}
    result = stack.cli("diagnose", "--json", env=env)
    assert result.returncode == 2, result.stderr
    data = json.loads(result.stdout)
    assert data["prometheus"]["reachable"] is False
    assert "is not reachable" in data["prometheus"]["error"]
    assert data["firing"] == [] and data["playbooks"] == []
    direct = data["direct"]
    assert set(direct["services"]) == {"gateway", "orders", "payments", "inventory",
                                       "notifications"}
    assert direct["breakers"]["states"]["payments"]["state"] == "closed"
    assert [k["key"] for k in direct["chaos"]] == ["chaos:inventory:lock_contention_ms"]
    human = stack.cli("diagnose", env=env)
    assert human.returncode == 2
    assert "Prometheus unreachable" in human.stdout
    assert "chaos set: chaos:inventory:lock_contention_ms=250" in human.stdout
    remediate = stack.cli("remediate", "--auto", "--yes", env=env)
    assert remediate.returncode == 2 and "Prometheus" in remediate.stderr


def test_dry_run_changes_nothing(clean_chaos: Any) -> None:
    stack = clean_chaos
    set_lock_contention(stack)  # the key alone makes inventory-lock-contention fire
    guard = RemediationGuard(stack.home)
    before = (stack.pids(), guard.used("inventory-lock-contention"),
              sorted((stack.home / "journal").glob("*.json")))
    result = stack.cli("remediate", "inventory-lock-contention", "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    [run] = json.loads(result.stdout)["runs"]
    assert run["status"] == "dry_run" and run["firing"] is True and run["steps"] == []
    assert run["plan"][0]["then"][0]["action"] == "clear_chaos"
    assert chaos_value(stack, "inventory", "lock_contention_ms") == 250
    after = (stack.pids(), guard.used("inventory-lock-contention"),
             sorted((stack.home / "journal").glob("*.json")))
    assert after == before


def test_no_yes_without_terminal_refuses(clean_chaos: Any) -> None:
    stack = clean_chaos
    set_lock_contention(stack)
    result = stack.cli("remediate", "inventory-lock-contention")
    assert result.returncode == 2
    assert "pass --yes" in result.stderr
    assert chaos_value(stack, "inventory", "lock_contention_ms") == 250


def test_lock_held_refuses_and_changes_nothing(clean_chaos: Any) -> None:
    stack = clean_chaos
    set_lock_contention(stack)
    with RemediationGuard(stack.home).lock("outbox-backlog"):
        result = stack.cli("remediate", "inventory-lock-contention", "--yes")
    assert result.returncode == 1
    assert "another remediation is running" in result.stderr
    assert chaos_value(stack, "inventory", "lock_contention_ms") == 250


def test_not_firing_runs_nothing(clean_chaos: Any) -> None:
    stack = clean_chaos
    result = stack.cli("remediate", "outbox-backlog", "--yes", "--json")
    assert result.returncode == 0, result.stderr
    [run] = json.loads(result.stdout)["runs"]
    assert run["status"] == "not_firing" and run["steps"] == []
    assert json.loads(open(run["journal"]).read())["status"] == "not_firing"


def test_usage_errors(stack: Any) -> None:
    assert stack.cli("remediate").returncode == 2
    both = stack.cli("remediate", "service-down", "--auto")
    assert both.returncode == 2 and "not both" in both.stderr
    unknown = stack.cli("remediate", "nope", "--yes")
    assert unknown.returncode == 2 and "unknown playbook 'nope'" in unknown.stderr
    assert stack.cli("diagnose", "nope").returncode == 2
    assert stack.cli("watch", "--interval", "soon").returncode == 2


def test_watch_remediates_and_stops_after_count(clean_chaos: Any) -> None:
    stack = clean_chaos
    set_lock_contention(stack)
    result = stack.cli("watch", "--interval", "1s", "--count", "2", "--json", timeout=200)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds.count("round") == 2
    assert "inventory-lock-contention" in events[kinds.index("round")]["firing"]
    end = next(e for e in events if e["event"] == "run_end")
    assert end["status"] == "recovered", json.dumps(end)[:2000]
    assert chaos_value(stack, "inventory", "lock_contention_ms") is None


def test_watch_ctrl_c_exits_130(stack: Any) -> None:
    import signal

    proc = subprocess.Popen([sys.executable, "-m", "chaosctl.cli.main", "watch", "--interval",
                             "1s"], env=stack.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        wait_for(lambda: "round" in proc.stdout.readline(), timeout=60, what="a watch round")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_playbooks_commands(stack: Any) -> None:
    listed = json.loads(stack.cli("playbooks", "list", "--json").stdout)
    assert len(listed) == 9
    shown = json.loads(stack.cli("playbooks", "show", "service-down", "--json").stdout)
    assert shown["name"] == "service-down" and shown["verify"]["hold_for"] == 3.0
    valid = json.loads(stack.cli("playbooks", "validate", "--json").stdout)
    assert valid == {"valid": True, "files": valid["files"], "problems": []}
    assert stack.cli("playbooks", "rules", "--check").returncode == 0


def test_alert_rules_loaded_by_the_stack_prometheus(stack: Any) -> None:
    def rules() -> list[str]:
        body = httpx.get(f"{stack.url('prometheus')}/api/v1/rules", timeout=5).json()
        return [r["name"] for g in body["data"]["groups"] for r in g["rules"]
                if r["type"] == "alerting"]

    names = wait_for(rules, timeout=30, what="alerting rules loaded")
    assert {"PaymentDegradation", "ServiceDown", "OutboxBacklog"} <= set(names)

"""`chaosctl health` against the real session stack: healthy, chaos left on, a paused and a
killed service, and a configuration it cannot load."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import httpx

from chaosctl.health import CHAOS_KEYS
from chaosctl.results.health import HealthReport
from tests.support import wait_for

SERVICES = ("gateway", "orders", "payments", "inventory", "notifications")


def health_json(stack: Any, *args: str) -> tuple[int, dict]:
    result: subprocess.CompletedProcess[str] = stack.cli("health", "--json", *args, timeout=60)
    assert result.returncode in (0, 1), f"rc={result.returncode}\n{result.stderr}"
    report = json.loads(result.stdout)
    # chaosctl builds plain data at run time; what it prints must be the documented contract
    # exactly (valid under the model, and dumped as the model dumps it).
    assert HealthReport.model_validate(report).model_dump(mode="json") == report
    return result.returncode, report


def reset_breakers(stack: Any) -> None:
    # Earlier tests' faults may have opened a breaker; a closed start state is the point here.
    for downstream in ("orders", "payments", "inventory", "notifications"):
        response = httpx.post(
            f"{stack.url('gateway')}/status/breakers/{downstream}/reset",
            headers=stack.admin_headers(), timeout=10,
        )
        assert response.status_code == 200, response.text


def healthy_now(stack: Any) -> dict | None:
    reset_breakers(stack)
    rc, report = health_json(stack)
    return report if rc == 0 else None


def test_healthy_stack_exits_0_with_the_documented_shape(clean_chaos: Any) -> None:
    stack = clean_chaos
    # Prometheus reports a target "unknown" until its first scrape: poll, never sleep.
    report = wait_for(lambda: healthy_now(stack), timeout=90, interval=1,
                      what="chaosctl health exit 0")
    assert report["healthy"] is True and report["problems"] == []
    assert set(report) == {"healthy", "problems", "services", "breakers", "redis",
                           "prometheus", "chaos", "checked_at"}
    assert set(report["services"]) == set(SERVICES)
    for name, service in report["services"].items():
        assert service["status"] == "ok", (name, service)
        assert service["url"] == stack.url(name)
        assert service["latency_ms"] is not None and service["latency_ms"] >= 0
    assert report["breakers"]["status"] == "ok"
    assert {"orders", "payments", "inventory"} <= set(report["breakers"]["states"])
    assert all(b["state"] == "closed" for b in report["breakers"]["states"].values())
    assert report["redis"]["status"] == "ok"
    assert report["prometheus"]["status"] == "ok"
    assert report["prometheus"]["targets_total"] >= 5
    assert report["prometheus"]["targets_down"] == []
    assert report["chaos"] == []

    table = stack.cli("health", timeout=60)
    assert table.returncode == 0, table.stdout
    assert "healthy" in table.stdout


def test_chaos_left_enabled_exits_1_and_lists_the_key_with_its_ttl(clean_chaos: Any) -> None:
    stack = clean_chaos
    response = httpx.post(
        f"{stack.url('payments')}/chaos/config", json={"latency_ms": 1, "ttl_s": 600},
        headers=stack.admin_headers(), timeout=10,
    )
    assert response.status_code == 200, response.text

    rc, report = health_json(stack)
    assert rc == 1
    assert report["healthy"] is False
    chaos = {entry["key"]: entry for entry in report["chaos"]}
    assert set(chaos) == {"chaos:payments:latency_ms"}
    assert chaos["chaos:payments:latency_ms"]["value"] == "1"
    assert 0 < chaos["chaos:payments:latency_ms"]["ttl_s"] <= 600
    assert any("chaos:payments:latency_ms" in p for p in report["problems"])
    assert set(CHAOS_KEYS) >= set(chaos)

    table = stack.cli("health", timeout=60)
    assert table.returncode == 1
    assert "may have been left enabled" in table.stdout


def test_paused_service_is_unreachable_and_exits_1(stack: Any) -> None:
    paused = stack.cli("stack", "pause", "notifications")
    assert paused.returncode == 0, paused.stderr
    reports: list[tuple[int, dict]] = []

    def payments_answered() -> bool:
        reports.append(health_json(stack, "--timeout", "1"))
        return reports[-1][1]["services"]["payments"]["status"] in ("ok", "degraded")

    try:
        # The others still answer in the same report: one frozen process must not hide the
        # rest. No wall-clock bound on them: if a busy machine makes payments miss its 1 s
        # as well, the report is taken again (the frozen one can never make it).
        wait_for(payments_answered, timeout=60, interval=0.5,
                 what="a report in which payments answered beside the frozen notifications")
        for rc, report in reports:
            assert rc == 1
            notifications = report["services"]["notifications"]
            assert notifications["status"] == "unreachable"
            assert "no answer within 1s" in notifications["detail"]
            assert any(p.startswith("notifications is unreachable") for p in report["problems"])
    finally:
        resumed = stack.cli("stack", "resume", "notifications")
        assert resumed.returncode == 0, resumed.stderr
    wait_for(lambda: health_json(stack)[1]["services"]["notifications"]["status"] == "ok",
             timeout=60, interval=0.5, what="notifications answering after resume")


def test_killed_service_is_unreachable_and_exits_1(stack: Any) -> None:
    killed = stack.cli("stack", "kill", "inventory")
    assert killed.returncode == 0, killed.stderr
    try:
        rc, report = health_json(stack)
        assert rc == 1
        inventory = report["services"]["inventory"]
        assert inventory["status"] == "unreachable"
        assert "refused" in inventory["detail"]
    finally:
        started = stack.cli("stack", "start", "inventory")
        assert started.returncode == 0, started.stderr
    wait_for(lambda: health_json(stack)[1]["services"]["inventory"]["status"] == "ok",
             timeout=60, interval=0.5, what="inventory answering after start")


def test_unloadable_configuration_exits_2(stack: Any) -> None:
    result = stack.cli("health", "--json",
                       env={**stack.env, "CHAOSCTL_CONFIG": "/nonexistent/config.toml"})
    assert result.returncode == 2
    assert "/nonexistent/config.toml" in result.stderr
    assert result.stdout == ""

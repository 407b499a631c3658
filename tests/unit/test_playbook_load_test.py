"""The `load_test` condition and the `stop_load_test` action: validation messages, the
gateway-overload plan's branch (dry run against a real, empty Prometheus), and both run
against a real chaosctl burst worker (no stack: it aims at a closed loopback port)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaosctl.chaos.worker import spawn_command
from chaosctl.config import Settings
from chaosctl.playbook.conditions import Probe, evaluate
from chaosctl.playbook.library import load_catalog
from chaosctl.playbook.loader import PlaybookValidationError
from chaosctl.playbook.model import LoadTestCondition
from chaosctl.playbook.registry import StepContext
from chaosctl.playbook.steps_remedy import StopLoadTestParams, stop_load_test
from chaosctl.runtime.workers import WorkerStore
from tests.support import free_port, free_ports, wait_for

PLAYBOOK = """\
name: test-incident
title: Test incident
severity: high
runbook: "Incident: Test"
detect: {{query: 'sum(rate(load_shed_total[15s]))', op: '>', threshold: 1}}
remediate:
  - if: {condition}
    then:
      - {{action: stop_load_test{params}}}
verify:
  conditions:
    - {{load_test: idle}}
"""


def problems(tmp_path: Path, condition: str, params: str = "") -> list:
    path = tmp_path / "test-incident.yaml"
    path.write_text(PLAYBOOK.format(condition=condition, params=params))
    with pytest.raises(PlaybookValidationError) as info:
        load_catalog([path], known_names=set())
    return info.value.problems


def test_load_test_condition_and_action_validate(tmp_path: Path) -> None:
    path = tmp_path / "test-incident.yaml"
    path.write_text(PLAYBOOK.format(condition="{load_test: running, kinds: overload}",
                                    params=", params: {kinds: [overload, retry-storm]}"))
    pb = load_catalog([path], known_names=set()).get("test-incident")
    cond = pb.remediate[0].if_
    assert isinstance(cond, LoadTestCondition)
    assert cond.running and cond.kinds == ["overload"]
    assert pb.verify.conditions[0].kinds == ["overload", "retry-storm"]  # default: both
    assert StopLoadTestParams.model_validate({}).kinds == ["overload", "retry-storm"]
    assert StopLoadTestParams.model_validate({"kinds": "overload"}).kinds == ["overload"]


@pytest.mark.parametrize("value", ["true", "yes", "runing", "1"])
def test_bad_load_test_value_names_the_fix(tmp_path: Path, value: str) -> None:
    [p] = problems(tmp_path, f"{{load_test: {value}}}")
    assert p.line == 7 and p.path.startswith("remediate[0]") and p.path.endswith(".load_test")
    assert "load_test must be 'running' or 'idle'" in p.message
    assert "{load_test: running}" in p.message


def test_bad_load_test_kind_lists_the_valid_ones(tmp_path: Path) -> None:
    [p] = problems(tmp_path, "{load_test: running, kinds: [k6]}")
    assert p.line == 7 and p.path.endswith(".kinds[0]")
    assert "'overload'" in p.message and "'retry-storm'" in p.message


def test_bad_stop_load_test_params(tmp_path: Path) -> None:
    [p] = problems(tmp_path, "{load_test: running}", ", params: {kinds: [revert]}")
    assert p.path == "remediate[0].then[0].params.kinds[0]"
    assert "'overload'" in p.message
    [p] = problems(tmp_path, "{load_test: running}", ", params: {rps: 5}")
    assert "unknown field 'rps'" in p.message


def test_unknown_condition_message_mentions_load_test(tmp_path: Path) -> None:
    [p] = problems(tmp_path, "{load_tests: running}")
    assert "load_test (running or idle)" in p.message


# -- the shipped gateway-overload plan ----------------------------------------------------------


@pytest.fixture
def prometheus() -> Iterator[int]:
    """A real Prometheus with no targets (every query answers empty), on a free port."""
    port = free_port()
    root = Path(tempfile.mkdtemp(prefix="chaosctl-unit-prom-"))
    (root / "prometheus.yml").write_text("global: {scrape_interval: 15s}\n")
    proc = subprocess.Popen(
        ["prometheus", f"--config.file={root / 'prometheus.yml'}",
         f"--storage.tsdb.path={root / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import httpx

        def ready() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, timeout=60, interval=0.2, what="prometheus ready")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        subprocess.run(["rm", "-rf", str(root)], check=False)


def test_dry_run_plan_branches_on_a_running_load_test(prometheus: int, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAOSCTL_")}
    env.update(CHAOSCTL_HOME=str(tmp_path / "home"), CHAOSCTL_PROMETHEUS_PORT=str(prometheus))
    result = subprocess.run(
        [sys.executable, "-m", "chaosctl.cli.main", "remediate", "gateway-overload",
         "--dry-run", "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    [run] = json.loads(result.stdout)["runs"]
    assert run["status"] == "dry_run" and run["firing"] is False and run["steps"] == []
    [branch] = run["plan"]
    assert branch["if"] == {"load_test": "running", "kinds": ["overload", "retry-storm"]}
    assert [s["action"] for s in branch["then"]] == ["stop_load_test", "advise"]
    assert branch["then"][0]["mutating"] is True
    assert [s["action"] for s in branch["else"]] == ["scale", "advise"]
    assert branch["else"][0]["params"] == {"service": "gateway", "replicas": 3}
    # The human rendering names the branch too.
    result = subprocess.run(
        [sys.executable, "-m", "chaosctl.cli.main", "remediate", "gateway-overload",
         "--dry-run"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "load_test" in result.stdout and "stop_load_test" in result.stdout


# -- against a real burst worker ----------------------------------------------------------------


@pytest.fixture
def worker_settings(tmp_path: Path) -> Settings:
    # Every port closed: the burst's requests are refused at once, Redis is "unreachable".
    ports = free_ports(7)
    names = ("gateway", "orders", "payments", "inventory", "notifications", "redis", "prometheus")
    return Settings(home=tmp_path / "home", **{f"{n}_port": p for n, p in zip(names, ports,
                                                                                strict=True)})


def start_burst(settings: Settings, started: list[subprocess.Popen[bytes]]) -> str:
    """A real `overload` worker at 2 rps for at most 60 s against a closed loopback port."""
    worker_id = "overload-unit0001"
    argv = spawn_command("overload", worker_id, settings, rps=2, for_s=60, max_requests=120)
    started.append(subprocess.Popen(argv, start_new_session=True, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL))
    store = WorkerStore(settings.home)
    wait_for(lambda: any(r.id == worker_id for r in store.live()), timeout=30,
             what="the burst worker recorded itself")
    return worker_id


def test_condition_and_action_against_a_real_burst(worker_settings: Settings) -> None:
    settings = worker_settings
    running = LoadTestCondition.model_validate({"load_test": "running"})
    idle = LoadTestCondition.model_validate({"load_test": "idle"})
    storm_only = LoadTestCondition.model_validate({"load_test": "running",
                                                   "kinds": ["retry-storm"]})
    ctx = StepContext(settings)
    assert evaluate(running, Probe(settings)).holds is False
    started: list[subprocess.Popen[bytes]] = []
    try:
        worker_id = start_burst(settings, started)
        probe = Probe(settings)
        result = evaluate(running, probe)
        assert result.holds is True and result.kind == "load_test"
        assert worker_id in result.value and "2 rps" in result.value
        assert evaluate(idle, probe).holds is False
        assert evaluate(storm_only, probe).holds is False  # kinds filter
        # Only retry-storm asked for: the overload burst is left alone.
        out = stop_load_test(ctx, StopLoadTestParams(kinds=["retry-storm"]))
        assert out["stopped"] == [] and started[0].poll() is None

        out = stop_load_test(ctx, StopLoadTestParams())
        assert out["stopped"] == [worker_id]
        assert started[0].wait(timeout=30) is not None  # the process really ended
        assert evaluate(running, Probe(settings)).holds is False
        assert evaluate(idle, Probe(settings)).holds is True
        again = stop_load_test(ctx, StopLoadTestParams())  # idempotent
        assert again["stopped"] == [] and "no chaosctl" in again["note"]
    finally:
        for proc in started:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

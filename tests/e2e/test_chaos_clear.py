"""The halt: `chaos clear --all` after a mix of five faults leaves nothing, also after the
chaosctl that started a burst was SIGKILLed; it works with a service down (Redis directly)
and says so when Redis is down."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.e2e.chaos_support import (
    chaos_keys,
    cli_json,
    pid_gone,
    service_ok,
    worker_files,
)
from tests.support import wait_for


def _all_running(stack: Any) -> bool:
    return all(p["alive"] and not p["paused"] for p in stack.status()["processes"])


def _assert_nothing_left(stack: Any) -> None:
    assert chaos_keys(stack) == {}
    assert worker_files(stack) == []
    assert _all_running(stack)
    rc, status = cli_json(stack, "chaos", "status")
    assert rc == 0 and status["clean"], status


def test_clear_all_after_five_faults(chaos_stack: Any) -> None:
    stack = chaos_stack
    injects = [
        ["payment-errors", "--rate", "0.3"],
        ["inventory-lock", "--ms", "200"],
        ["service-hang", "notifications", "--for", "5m"],
        ["service-down", "payments", "--for", "0"],
        ["overload", "--rps", "20", "--for", "60s", "--detach"],
    ]
    workers = []
    for args in injects:
        rc, out = cli_json(stack, "inject", *args)
        assert rc == 0, out
        if out["worker"]:
            workers.append(out["worker"]["pid"])
    rc, status = cli_json(stack, "chaos", "status")
    kinds = sorted({(f["kind"], f["fault"]) for f in status["faults"]})
    assert rc == 1 and kinds == sorted({
        ("key", "payment-errors"), ("key", "inventory-lock"), ("paused", "service-hang"),
        ("killed", "service-down"), ("worker", "overload"), ("worker", "service-hang"),
        ("worker", "service-down")}), kinds
    rc, out = cli_json(stack, "chaos", "clear", "--all")
    assert rc == 0 and out["ok"] and out["remaining"] == [] and out["problems"] == [], out
    assert all(pid_gone(pid) for pid in workers)
    _assert_nothing_left(stack)
    rc, out = cli_json(stack, "chaos", "clear", "--all")  # idempotent: nothing to do
    assert rc == 0 and out["ok"] and out["actions"] == []


def test_clear_all_after_chaosctl_was_sigkilled_mid_overload(chaos_stack: Any) -> None:
    stack = chaos_stack
    cli = subprocess.Popen(
        [sys.executable, "-m", "chaosctl.cli.main", "inject", "overload", "--rps", "50",
         "--for", "60s"], env=stack.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        files = wait_for(lambda: worker_files(stack), 30, what="the burst to record itself")
        record = json.loads(Path(files[0]).read_text())
        burst = record["pid"]
        assert burst != cli.pid and record["kind"] == "overload"
        wait_for(lambda: (json.loads(Path(files[0]).read_text()).get("stats") or {})
                 .get("sent", 0) > 0, 30, what="the burst to send requests")
    finally:
        os.kill(cli.pid, signal.SIGKILL)
        cli.communicate(timeout=10)
    assert cli.returncode == -signal.SIGKILL
    assert not pid_gone(burst)  # the burst outlives the CLI that started it
    rc, out = cli_json(stack, "chaos", "clear", "--all")
    assert rc == 0 and out["ok"], out
    wait_for(lambda: pid_gone(burst), 10, what="the burst process to be gone")
    _assert_nothing_left(stack)


def test_clear_with_payments_down_uses_redis_directly(chaos_stack: Any) -> None:
    stack = chaos_stack
    rc, _ = cli_json(stack, "inject", "payment-errors", "--rate", "0.2")
    assert rc == 0
    assert stack.cli("stack", "kill", "payments").returncode == 0
    # Injecting needs the service: exit 1, nothing set.
    result = stack.cli("inject", "payment-latency", "--ms", "100")
    assert result.returncode == 1 and "unreachable" in result.stderr
    assert set(chaos_keys(stack)) == {"chaos:payments:error_rate"}
    rc, out = cli_json(stack, "chaos", "clear", "payment-errors")
    assert rc == 0 and out["ok"], out
    assert any("Redis directly" in a["how"] for a in out["actions"]), out["actions"]
    assert chaos_keys(stack) == {}


def test_clear_with_redis_down_says_so(chaos_stack: Any) -> None:
    stack = chaos_stack
    assert stack.cli("stack", "kill", "redis").returncode == 0
    try:
        rc, out = cli_json(stack, "chaos", "clear", "--all")
        assert rc == 1 and not out["ok"]
        assert any("Redis" in p and "unreachable" in p for p in out["problems"]), out
        rc, status = cli_json(stack, "chaos", "status")
        assert rc == 1 and status["redis"] == "unreachable"
        result = stack.cli("chaos", "clear", "--all")
        assert result.returncode == 1 and "Redis" in result.stderr
    finally:
        assert stack.cli("stack", "start", "redis").returncode == 0
    for service in ("payments", "inventory"):
        wait_for(lambda s=service: service_ok(stack, s), 60, what=f"{service} sees Redis")

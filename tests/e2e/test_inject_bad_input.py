"""Every bad input path exits 2, names the valid range or names, and sets nothing; --dry-run
prints what it would do and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.chaos_support import audit_lines, chaos_keys, cli_json, worker_files


def _snapshot(stack: Any) -> tuple[Any, ...]:
    procs = tuple((p["name"], p["replica"], p["pid"], p["alive"], p["paused"])
                  for p in stack.status()["processes"])
    return tuple(sorted(chaos_keys(stack))), tuple(worker_files(stack)), procs


BAD = [
    (["payment-errors", "--rate", "1.5"], "0 < rate <= 1"),
    (["payment-errors", "--rate", "-0.2"], "0 < rate <= 1"),
    (["payment-errors"], "needs --rate"),
    (["payment-errors", "--rate", "abc"], "--rate"),
    (["payment-errors", "--rate", "0.2", "--ttl", "0"], "--ttl 0 is refused"),
    (["payment-errors", "--rate", "0.2", "--ttl", "soon"], "not a duration"),
    (["payment-latency", "--ms", "-5"], "1..60000"),
    (["payment-latency", "--ms", "70000"], "1..60000"),
    (["inventory-lock", "--ms", "-1"], "1..60000"),
    (["inventory-errors", "--rate", "2"], "0 < rate <= 1"),
    (["service-down", "nope"], "valid services: gateway, orders, payments, inventory"),
    (["service-down", "redis"], "valid services"),
    (["service-hang", "payments", "--for", "-3s"], "negative"),
    (["service-down", "payments", "--for", "20m"], "longer than --ttl"),
    (["notifications-down", "--ttl", "0"], "--ttl 0 is refused"),
    (["overload", "--rps", "0"], "1..2000"),
    (["overload", "--rps", "50", "--for", "0"], "--for 0 is refused"),
    (["retry-storm", "--retries", "50"], "1..20"),
    (["retry-storm", "--rate", "1.5"], "0 < rate <= 1"),
    (["bogus-fault"], "valid faults: payment-errors"),
]


@pytest.mark.parametrize(("args", "needle"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_inject_exits_2_and_sets_nothing(clean_chaos: Any, args: list[str],
                                             needle: str) -> None:
    stack = clean_chaos
    before = _snapshot(stack)
    result = stack.cli("inject", *args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert needle in " ".join(result.stderr.split()), result.stderr  # rich may wrap the line
    assert _snapshot(stack) == before


@pytest.mark.parametrize("args", [["clear", "bogus"], ["clear"], ["clear", "payments", "--all"],
                                  ["log", "--tail", "0"]])
def test_bad_chaos_commands_exit_2(clean_chaos: Any, args: list[str]) -> None:
    result = clean_chaos.cli("chaos", *args)
    assert result.returncode == 2, (result.stdout, result.stderr)


def test_dry_run_changes_nothing(clean_chaos: Any) -> None:
    stack = clean_chaos
    before = _snapshot(stack)
    n_audit = len(audit_lines(stack))
    for args in (["payment-errors", "--rate", "0.2"], ["inventory-lock", "--ms", "2000"],
                 ["service-down", "payments", "--for", "30s"], ["service-hang", "inventory"],
                 ["notifications-down"], ["overload", "--rps", "50", "--for", "10s"],
                 ["retry-storm"]):
        rc, out = cli_json(stack, "inject", *args, "--dry-run")
        assert rc == 0 and out["dry_run"] and out["actions"] and out["worker"] is None
    rc, out = cli_json(stack, "inject", "payment-errors", "--rate", "0.2", "--dry-run")
    [step] = out["actions"]
    assert "chaos:payments:error_rate=0.2" in step["detail"] and "TTL 600s" in step["detail"]
    assert _snapshot(stack) == before
    entries = audit_lines(stack)[n_audit:]
    assert len(entries) == 8 and {e["outcome"] for e in entries} == {"dry_run"}


def test_unreachable_service_fails_and_sets_nothing(clean_chaos: Any) -> None:
    stack = clean_chaos
    env = dict(stack.env)
    from tests.support import free_port

    env["CHAOSCTL_PAYMENTS_PORT"] = str(free_port())  # nothing listens there
    result = stack.cli("inject", "payment-errors", "--rate", "0.2", env=env)
    assert result.returncode == 1
    assert "unreachable" in result.stderr and "nothing was set" in result.stderr
    assert chaos_keys(stack) == {}
    assert audit_lines(stack)[-1]["outcome"] == "failed"

"""The reusable load generator against the running gateway: bounded, live stats, stoppable."""

from __future__ import annotations

from typing import Any

from chaosctl.chaos.load import LoadConfig, LoadRunner
from tests.e2e.chaos_support import restore_stack
from tests.support import wait_for


def test_bounded_run_counts_every_request(clean_chaos: Any) -> None:
    stack = clean_chaos
    try:
        runner = LoadRunner(LoadConfig(base_url=stack.url("gateway"), rps=20, duration_s=30,
                                       max_requests=25)).start()
        result = runner.join(timeout=60)
        assert result["stop_reason"] == "max_requests"
        assert result["sent"] == 25 and result["ok"] + result["errors"] <= 25
        assert sum(result["status_counts"].values()) + result["errors"] == 25
        assert result["ok"] > 0 and result["p50_ms"] is not None
        assert result["p50_ms"] <= result["p95_ms"] <= result["p99_ms"]
    finally:
        restore_stack(stack)


def test_stop_ends_a_run_early(clean_chaos: Any) -> None:
    stack = clean_chaos
    try:
        runner = LoadRunner(LoadConfig(base_url=stack.url("gateway"), rps=10, duration_s=120,
                                       max_requests=10_000)).start()
        wait_for(lambda: runner.stats()["sent"] >= 5, 30, what="some requests sent")
        runner.stop()
        result = runner.join(timeout=30)
        assert not runner.running()
        assert result["stop_reason"] == "stopped" and result["sent"] < 10_000
    finally:
        restore_stack(stack)

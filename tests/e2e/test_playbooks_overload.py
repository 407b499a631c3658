"""End to end, gateway-overload caused by chaosctl's own load test: a detached `chaosctl
inject overload` burst makes the gateway shed (429), `chaosctl diagnose` names exactly
gateway-overload, and `chaosctl remediate gateway-overload --yes` takes the runbook's
"runaway test: stop the load test" branch (not the scale-up) and recovers. The burst is bounded
by --for and aims at the session stack on loopback; the test leaves the stack steady."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.chaos_support import cli_json, pid_gone
from tests.e2e.test_playbooks_incidents import diagnose, remediate, wait_firing
from tests.support import wait_for

# Minutes each on a live stack: `make test-slow` (CI runs it after `make test`).
pytestmark = pytest.mark.slow

# Far above what the gateway serves on 2 cores (its orders bulkhead has 64 slots), so it sheds;
# bounded by --for in any case.
RPS = "300"


def gateway_replicas(stack: Any) -> int:
    return sum(1 for p in stack.status()["processes"] if p["name"] == "gateway")


def test_gateway_overload_from_a_chaosctl_burst_stops_the_burst(steady: Any) -> None:
    stack = steady
    # Start from quiet: the 15 s detection windows may still hold the previous test's incident.
    wait_for(lambda: not diagnose(stack)["firing"], timeout=60, interval=1,
             what="no incident firing before the test")
    try:
        rc, out = cli_json(stack, "inject", "overload", "--rps", RPS, "--for", "40s",
                           "--detach")
        assert rc == 0, out
        worker = out["worker"]
        assert worker["kind"] == "overload"
        wait_firing(stack, "gateway-overload", timeout=40)

        run = remediate(stack, "gateway-overload")
        [branch] = [s for s in run["steps"] if s["action"] == "if"]
        assert branch["output"]["branch"] == "then", branch
        assert branch["output"]["condition"]["kind"] == "load_test"
        assert branch["output"]["condition"]["holds"] is True
        [stop] = [s for s in run["steps"] if s["action"] == "stop_load_test"]
        assert stop["status"] == "ok" and stop["output"]["stopped"] == [worker["id"]], stop
        assert not any(s["action"] == "scale" for s in run["steps"])  # the else branch
        assert gateway_replicas(stack) == 1

        assert pid_gone(worker["pid"])
        rc, status = cli_json(stack, "chaos", "status")
        assert [f for f in status["faults"] if f["kind"] == "worker"] == [], status
        assert rc == 0 and status["clean"], status
    finally:
        stack.cli("chaos", "clear", "--all")
        if gateway_replicas(stack) > 1:
            assert stack.cli("stack", "scale", "gateway=1").returncode == 0

"""The runbook's scripts work as written from stack/, through chaosctl when it is on PATH and
through curl otherwise; the runbook's reset loop (DELETE /chaos/config) clears everything."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.chaos_support import chaos_keys, cli_json, run_script

VENV_BIN = str(Path(sys.executable).parent)  # where the `chaosctl` entry point lives


@pytest.mark.parametrize("via", ["curl", "cli"])
def test_scripts_enable_and_disable(chaos_stack: Any, via: str) -> None:
    stack = chaos_stack
    prefix = VENV_BIN if via == "cli" else None
    if via == "cli":
        assert (Path(VENV_BIN) / "chaosctl").exists()
    cases = [
        ("payment_errors.sh", ["0.25"], "chaos:payments:error_rate", 0.25),
        ("payment_slow.sh", ["1500"], "chaos:payments:latency_ms", 1500),
        ("inventory_lock.sh", ["700"], "chaos:inventory:lock_contention_ms", 700),
    ]
    for script, args, key, value in cases:
        result = run_script(stack, script, "enable", *args, via=via, path_prefix=prefix)
        assert result.returncode == 0, result.stderr
        got, ttl = chaos_keys(stack)[key]
        assert float(got) == value and ttl > 0
    for script, _, key, _ in cases:
        result = run_script(stack, script, "disable", via=via, path_prefix=prefix)
        assert result.returncode == 0, result.stderr
        assert key not in chaos_keys(stack)
    assert chaos_keys(stack) == {}


def test_script_defaults_and_usage(chaos_stack: Any) -> None:
    stack = chaos_stack
    assert run_script(stack, "payment_errors.sh", "enable", via="curl").returncode == 0
    assert float(chaos_keys(stack)["chaos:payments:error_rate"][0]) == 0.2
    bad = run_script(stack, "payment_errors.sh", "sideways", via="curl")
    assert bad.returncode == 2 and "usage" in bad.stderr
    assert run_script(stack, "payment_errors.sh", "disable", via="curl").returncode == 0


def test_retry_storm_script(chaos_stack: Any) -> None:
    stack = chaos_stack
    result = run_script(stack, "retry_storm.sh", "enable", via="cli", path_prefix=VENV_BIN)
    assert result.returncode == 0, result.stderr
    rc, status = cli_json(stack, "chaos", "status")
    assert rc == 1 and {"retry-storm", "payment-errors"} <= {f["fault"] for f in
                                                             status["faults"]}
    result = run_script(stack, "retry_storm.sh", "disable", via="cli", path_prefix=VENV_BIN)
    assert result.returncode == 0, result.stderr
    rc, status = cli_json(stack, "chaos", "status")
    assert rc == 0 and status["clean"]
    # Without chaosctl the script still sets (and clears) the payment errors.
    assert run_script(stack, "retry_storm.sh", "enable", via="curl").returncode == 0
    assert float(chaos_keys(stack)["chaos:payments:error_rate"][0]) == 0.5
    assert run_script(stack, "retry_storm.sh", "disable", via="curl").returncode == 0
    assert chaos_keys(stack) == {}


def test_runbook_reset_loop(chaos_stack: Any) -> None:
    stack = chaos_stack
    for args in (["payment-errors", "--rate", "0.2"], ["payment-latency", "--ms", "10"],
                 ["inventory-lock", "--ms", "10"], ["inventory-errors", "--rate", "0.1"]):
        assert cli_json(stack, "inject", *args)[0] == 0
    assert len(chaos_keys(stack)) == 4
    for url in (stack.url("payments"), stack.url("inventory")):  # the runbook's loop
        assert httpx.delete(f"{url}/chaos/config", timeout=10).status_code == 200
    assert chaos_keys(stack) == {}

"""`chaosctl game-day` end to end on the session stack: the whole loop under real traffic."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.chaos_support import assert_game_day_held
from tests.support import wait_for

# Minutes each on a live stack: `make test-slow` (CI runs it after `make test`).
pytestmark = pytest.mark.slow

FAST = ["--rps", "15", "--baseline", "3s", "--hold", "3s", "--duration", "60s"]


def _game_day(stack, report: Path, *args: str) -> tuple[int, dict[str, Any], str]:  # noqa: ANN001
    result = stack.cli("game-day", *args, "--json", "--report", str(report), timeout=400)
    try:
        data = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"no JSON (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.returncode, data, result.stderr


def _nothing_injected(stack) -> None:  # noqa: ANN001
    status = stack.cli("chaos", "status", "--json")
    assert json.loads(status.stdout)["faults"] == [], status.stdout


@pytest.mark.parametrize("scenario,playbook", [
    ("payment-errors", "payment-degradation"),
    ("notifications-down", "outbox-backlog"),
    ("service-crash", "service-down"),
    # SIGSTOP: the frozen process misses its scrape (up == 0) and its health check times out
    ("service-hang", "service-down"),
    ("inventory-errors", "inventory-errors"),
])
def test_scenario_auto_passes(steady, tmp_path: Path, scenario: str, playbook: str) -> None:  # noqa: ANN001
    code, data, stderr = _game_day(steady, tmp_path, scenario, *FAST)
    (result,) = data["results"]
    assert result["scenario"] == scenario
    assert result["fired_playbook"] == playbook, stderr
    assert result["right_playbook"] is True
    assert result["duplicates"] == 0
    assert result["lost_events"] == 0
    assert result["rolled_back"] is True
    assert result["mttd_s"] is not None and result["mttr_s"] is not None
    assert result["mttd_s"] <= result["mttr_s"]
    # Detected by the right playbook and recovered, integrity and success objectives met;
    # how fast (detect <= 15 s, recover <= 35 s) is the game day's figure, not a test bound.
    assert_game_day_held(code, result, stderr)
    page = Path(result["report_path"])
    assert page.is_file() and page.with_suffix(".json").is_file()
    journal = json.loads(page.with_suffix(".json").read_text())
    kinds = [m["kind"] for m in journal["markers"]]
    assert kinds[:3] == ["inject", "detect", "remediate"] and "recover" in kinds
    _nothing_injected(steady)


def test_abort_guard_rolls_back_a_fault_nobody_fixes(steady, tmp_path: Path) -> None:  # noqa: ANN001
    # Manual mode and nobody at the keyboard: the fault stays until the guard ends the run.
    code, data, _ = _game_day(steady, tmp_path, "payment-errors", "--mode", "manual",
                              "--rps", "15", "--baseline", "3s", "--abort-floor", "0.99",
                              "--abort-grace", "4s", "--duration", "30s")
    (result,) = data["results"]
    assert code == 1
    assert result["outcome"] == "aborted"
    assert result["rolled_back"] is True
    assert "abort floor" in result["reason"] or "maximum time" in result["reason"]
    _nothing_injected(steady)


def test_sigint_mid_run_leaves_nothing_injected(steady, tmp_path: Path) -> None:  # noqa: ANN001
    import redis

    proc = subprocess.Popen(
        [sys.executable, "-m", "chaosctl.cli.main", "game-day", "payment-errors", "--mode",
         "manual", "--rps", "10", "--baseline", "2s", "--duration", "120s",
         "--abort-floor", "0", "--report", str(tmp_path)],
        env=steady.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    client = redis.Redis(port=steady.settings.redis_port)
    try:
        wait_for(lambda: client.get("chaos:payments:error_rate") is not None, timeout=60,
                 what="the game day to inject payment errors")
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        client.close()
    assert proc.returncode == 130, stderr
    assert "rolled back" in stderr
    _nothing_injected(steady)
    partial = list(tmp_path.glob("payment-errors-*.json"))
    assert partial, "the interrupted run still writes its journal"
    assert json.loads(partial[0].read_text())["outcome"] == "aborted"


def test_bad_scenario_and_options_exit_2_and_inject_nothing(stack) -> None:  # noqa: ANN001
    for args, needle in ((["no-such"], "valid:"), ([], "--all"),
                         (["payment-errors", "--mode", "robot"], "auto or manual"),
                         (["payment-errors", "--rps", "0"], "--rps"),
                         (["payment-errors", "--duration", "soon"], "duration")):
        result = stack.cli("game-day", *args)
        assert result.returncode == 2, (args, result.stderr)
        assert needle in result.stderr, (args, result.stderr)
    _nothing_injected(stack)

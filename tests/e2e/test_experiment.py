"""`chaosctl experiment --quick` as a user runs it, on a stack of its own: every requested
cell measured with the paper's figures beside ours, JSON that validates against its model,
the stack back in its normal configuration afterwards; and Ctrl-C keeps the cells already
measured and restores the stack too. Minutes each: marked slow."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from chaosctl.domain import SERVICES
from chaosctl.experiment.configs import CONFIGS
from chaosctl.results.experiment import ExperimentResult
from tests.e2e.conftest import StackHandle

pytestmark = pytest.mark.slow

SWITCHES = sorted({key for config in CONFIGS.values() for key in config.env})


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def assert_normal_configuration(stack: StackHandle, before: dict[str, int]) -> None:
    """Every service runs again, restarted (new pids) without any configuration switch."""
    status = stack.status()
    assert status["healthy"], status
    pids = stack.pids()
    for service in SERVICES:
        pid = pids[f"{service}.0"]
        assert pid != before[f"{service}.0"], f"{service} was never restarted"
        overrides = sorted(set(_environ(pid)) & set(SWITCHES))
        assert not overrides, f"{service} still runs with {overrides}"
    chaos = json.loads(stack.cli("chaos", "status", "--json").stdout)
    assert chaos["clean"], chaos


@pytest.mark.timeout(600)
def test_quick_experiment(make_stack: Callable[[], StackHandle], tmp_path: Path) -> None:
    stack = make_stack()
    stack.up()
    before = stack.pids()
    run = stack.cli("experiment", "--quick", "--json", "--report", str(tmp_path),
                    timeout=540)
    assert run.returncode == 0, run.stderr[-3000:]
    result = ExperimentResult.model_validate_json(run.stdout)
    assert result.options.quick and not result.interrupted and result.restored
    assert result.stack == "running"
    # Every requested cell: A and E, each with a baseline and the two quick scenarios.
    got = {(c.config, c.scenario) for c in result.cells}
    assert got == {(c, s) for c in ("A", "E")
                   for s in ("baseline", "payment_errors", "payment_slow")}
    assert result.planned == result.completed == 6
    for cell in result.cells:
        assert cell.status == "measured", cell.reason
        assert cell.metrics is not None and cell.metrics.requests > 0
    # The paper's figures beside ours, with the difference.
    cell = next(c for c in result.cells if (c.config, c.scenario) == ("A", "payment_errors"))
    row = next(t for t in cell.table if t.metric == "success_pct")
    assert row.paper == 80.2 and row.ours is not None
    assert row.diff == pytest.approx(row.ours - 80.2, abs=0.01)
    slow = next(c for c in result.cells if (c.config, c.scenario) == ("E", "payment_slow"))
    assert {t.metric for t in slow.table} == {"success_pct", "p95_ms", "p99_ms", "mttr_s"}
    assert next(t for t in slow.table if t.metric == "mttr_s").paper == 32
    # The switches were really applied: under A (no timeouts, no breakers) a 3 s payment is
    # a 3 s order; E's payments breaker opened during the same fault.
    a_slow = next(c for c in result.cells if (c.config, c.scenario) == ("A", "payment_slow"))
    assert a_slow.metrics and a_slow.metrics.p50_ms and a_slow.metrics.p50_ms >= 3000
    assert a_slow.metrics.breaker_open_pct is None
    assert slow.metrics and (slow.metrics.breaker_open_pct or 0) > 0
    # The HTML report and its JSON were written.
    page = Path(result.report_path or "")
    assert page.is_file() and page.parent == tmp_path
    assert 'data-scenario="payment_slow"' in page.read_text()
    assert_normal_configuration(stack, before)


@pytest.mark.timeout(600)
def test_ctrl_c_keeps_measured_cells_and_restores(make_stack: Callable[[], StackHandle],
                                                  tmp_path: Path) -> None:
    stack = make_stack()
    stack.up()
    before = stack.pids()
    proc = subprocess.Popen(
        [sys.executable, "-m", "chaosctl.cli.main", "experiment", "--quick", "--configs", "E",
         "--scenarios", "payment_errors,payment_slow", "--json", "--report", str(tmp_path)],
        env=stack.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Interrupt during the second cell (payment_errors), once the baseline is measured.
        assert proc.stderr is not None
        deadline = time.monotonic() + 300
        seen = ""
        while "E baseline:" not in seen and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                break
            seen += line
        assert "E baseline:" in seen, seen[-2000:]
        time.sleep(4.0)  # well inside payment_errors' 15 s fault
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err[-3000:]
    result = ExperimentResult.model_validate_json(out)
    assert result.interrupted and result.restored
    assert [(c.config, c.scenario) for c in result.cells] == [("E", "baseline")]
    assert result.cells[0].status == "measured"
    assert result.completed == 1 and result.planned == 3
    assert Path(result.report_path or "").is_file()
    assert_normal_configuration(stack, before)

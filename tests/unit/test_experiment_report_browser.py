"""The experiment's HTML report opens in headless Chromium without errors: every scenario's
charts are drawn (a bar per configuration, the paper's figure marked) beside the table."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from chaosctl.experiment.configs import CONFIGS
from chaosctl.experiment.paper import TABLE_ROWS
from chaosctl.experiment.report import write
from chaosctl.experiment.runner import Experiment, ExperimentOptions, make_cell
from chaosctl.results.experiment import ExperimentResult

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                                reason="chromium is not installed (apt-get install chromium)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0"]


def _metrics(i: int) -> dict[str, object]:
    return {"requests": 100 + i, "success_pct": 60.0 + 6 * i, "p50_ms": 40.0 + i,
            "p95_ms": 900.0 - 100 * i, "p99_ms": 1500.0, "raf": 2.5 - 0.3 * i,
            "breaker_open_pct": 30.0 if i >= 3 else None, "mttr_s": 20.0 - i,
            "recovered": True, "duplicate_pct": 8.0 - i if i < 5 else 0.0,
            "shed_pct": 10.0 * (i >= 4), "error_5xx_pct": 40.0 - 7 * i,
            "payment_p95_ms": 100.0, "bulkhead_rejection_pct": 5.0}


def _result(tmp_path: Path) -> tuple[ExperimentResult, Path]:
    from chaosctl.config import Settings

    opts = ExperimentOptions()
    result = Experiment(Settings(home=tmp_path), opts).result
    for i, config in enumerate(CONFIGS):
        for scenario in ("baseline", *opts.scenarios):
            if config == "C" and scenario == "retry_storm":  # a cell that could not run
                result.cells.append(make_cell(config, scenario, [], "InjectionFailedError: x",
                                              120.0, 1.9e9, 1.0))
                continue
            result.cells.append(make_cell(config, scenario, [_metrics(i)], None, 120.0,
                                          1.9e9, 150.0))
    result.completed = len(result.cells)
    return result, write(result, tmp_path / "reports")


def test_report_renders_in_chromium(tmp_path: Path) -> None:
    result, page = _result(tmp_path)
    assert page.with_suffix(".json").is_file()
    ExperimentResult.model_validate_json(page.with_suffix(".json").read_text())
    dom = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                          "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr
    assert "Uncaught" not in dom.stderr and "CONSOLE" not in dom.stderr, dom.stderr
    html = dom.stdout
    for scenario in ("payment_errors", "payment_slow", "inventory_lock", "retry_storm",
                     "gateway_overload"):
        charts = re.findall(rf'<svg class="chart" data-scenario="{scenario}"', html)
        assert len(charts) == len(TABLE_ROWS[scenario]), scenario
        assert f'<table class="results" data-scenario="{scenario}">' in html
    # payment_errors success: a bar for each of the six configurations, and the paper's six
    # figures marked on them.
    chart = re.search(r'data-scenario="payment_errors" data-metric="success_pct".*?</svg>',
                      html, re.S)
    assert chart is not None
    assert len(re.findall(r'class="bar ours"', chart.group(0))) == 6
    assert len(re.findall(r'class="paper-mark"', chart.group(0))) == 6
    assert "paper 80.2 %" in html  # A's figure in the table
    assert "error" in html  # the cell that could not run is shown, not dropped

    shot = tmp_path / "shot.png"
    run = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                          f"--screenshot={shot}", "--window-size=1100,900", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and shot.is_file(), run.stderr
    assert shot.stat().st_size > 10_000, "the screenshot looks blank: nothing was drawn"

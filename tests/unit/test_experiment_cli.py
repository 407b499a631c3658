"""`chaosctl experiment` refuses bad input with one line and exit 2 before touching any
stack; the local backend starts services with the experiment's SHOP_* switches only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from chaosctl.config import Settings
from chaosctl.errors import InvalidInputError
from chaosctl.experiment.configs import CONFIGS
from chaosctl.runtime.local import LocalBackend
from tests.support import free_ports

PORTS = ("gateway", "orders", "payments", "inventory", "notifications", "redis", "prometheus")


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAOSCTL_")}
    env["CHAOSCTL_HOME"] = str(home)
    env.update({f"CHAOSCTL_{n.upper()}_PORT": str(p)
                for n, p in zip(PORTS, free_ports(len(PORTS)), strict=True)})
    return subprocess.run([sys.executable, "-m", "chaosctl.cli.main", "experiment", *args],
                          env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("args", "needle"), [
    (("--configs", "A,X"), "unknown configuration X; valid: A,B,C,D,E,F"),
    (("--configs", ","), "unknown configuration (none given)"),
    (("--scenarios", "payment_errors,disk_full"), "unknown scenario disk_full"),
    (("--duration", "soon"), "--duration 'soon' is not a duration"),
    (("--duration", "0s"), "--duration 0s is out of range"),
    (("--rps", "500"), "--rps 500 is out of range"),
    (("--repeat", "0"), "--repeat 0 is out of range"),
    (("--quick", "--hold", "50s"), "--hold 50s is longer than --recover-max 40s"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: tuple[str, ...],
                                          needle: str) -> None:
    result = cli(tmp_path, *args)
    assert result.returncode == 2, result.stderr
    assert needle in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists(), "bad input must not touch the stack"


def test_backend_gives_services_the_switches_and_nothing_else(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CONFIGS["A"].env:
        monkeypatch.delenv(name, raising=False)
    settings = Settings(home=tmp_path)
    env_a = LocalBackend(settings, service_env=CONFIGS["A"].env)._env("orders", 0)
    assert env_a["SHOP_RETRIES"] == "0" and env_a["SHOP_TIMEOUT_PAYMENTS_S"] == "120"
    assert env_a["SHOP_REDIS_URL"] == settings.redis_url  # the stack's own wiring stays
    assert not set(LocalBackend(settings)._env("orders", 0)) & set(CONFIGS["A"].env)
    # Redis and Prometheus never see the switches.
    assert "SHOP_RETRIES" not in LocalBackend(settings, {"SHOP_RETRIES": "0"})._env("redis", 0)
    with pytest.raises(InvalidInputError, match="only set SHOP_"):
        LocalBackend(settings, service_env={"PYTHONPATH": "/tmp/evil"})


def test_progress_shows_cell_n_of_m_and_an_eta_from_the_run_so_far(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from rich.console import Console

    from chaosctl.cli import experiment as cli_experiment
    from chaosctl.events import Event
    from chaosctl.experiment.runner import ExperimentOptions

    clock = [1000.0]
    monkeypatch.setattr(cli_experiment.time, "monotonic", lambda: clock[0])
    opts = ExperimentOptions(configs=["A"], scenarios=["payment_errors"], duration_s=60,
                             baseline_s=30, recover_max_s=60)
    progress = cli_experiment._Progress(opts)
    progress.console = Console(file=io.StringIO(), width=120)

    def event(kind: str, **data: object) -> Event:
        return Event(kind=kind, source="gameday", at=clock[0], subject="experiment", data=data)

    with progress:
        progress(event("cell_start", n=1, m=2, config="A", scenario="baseline",
                       planned_s=opts.planned_s("baseline")))
        clock[0] += 35.0  # the baseline as planned (3 + 30 + 2 s)
        progress(event("cell_end", n=1, m=2, cell={
            "config": "A", "scenario": "baseline", "status": "measured", "reason": None,
            "metrics": {"success_pct": 100.0, "p95_ms": 50.0, "raf": 1.0}}))
        progress(event("cell_start", n=2, m=2, config="A", scenario="payment_errors",
                       planned_s=opts.planned_s("payment_errors")))
        task = progress.progress.tasks[0]
        assert task.description == "cell 2 of 2: A payment_errors"
        # On plan so far: what is left is the second cell's plan, 1 + 60 + 60/3 + 2 = 83 s.
        assert task.fields["eta"] == "1:23"
        clock[0] += 35.0
        progress(event("tick", phase="fault", t=35.0))
        task = progress.progress.tasks[0]
        assert task.description == "cell 2 of 2: A payment_errors (fault)"
        assert task.fields["eta"] == "0:48"  # on plan: 118 - 70 s
        clock[0] += 200.0  # the cell overruns: it counts as 95 % done, scaled by the pace
        progress(event("tick", phase="recovery", t=235.0))
        left = (118 - (35 + 0.95 * 83)) * 270 / (35 + 0.95 * 83)
        assert progress.progress.tasks[0].fields["eta"] == f"0:{int(left):02d}"
    assert "A baseline: success 100.0%, P95 50.0 ms, RAF 1.00x" in \
        progress.console.file.getvalue()

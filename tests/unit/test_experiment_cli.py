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

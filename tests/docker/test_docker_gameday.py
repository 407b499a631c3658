"""`chaosctl game-day` on the docker backend: the same scenarios, unchanged, with containers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.docker.conftest import DockerStack

FAST = ["--rps", "15", "--baseline", "3s", "--hold", "3s", "--duration", "60s"]


@pytest.mark.parametrize("scenario,playbook", [
    ("payment-errors", "payment-degradation"),
    ("service-crash", "service-down"),  # a container SIGKILLed: up == 0 on its service name
])
def test_game_day_on_docker(docker_stack: DockerStack, tmp_path: Path, scenario: str,
                            playbook: str) -> None:
    result = docker_stack.cli("game-day", scenario, *FAST, "--json", "--report",
                              str(tmp_path), timeout=400)
    try:
        data = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"no JSON (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")
    (run,) = data["results"]
    print(f"[docker] game-day {scenario}: mttd {run['mttd_s']}s mttr {run['mttr_s']}s")
    assert result.returncode == 0, result.stderr[-3000:]
    assert run["fired_playbook"] == playbook
    assert run["right_playbook"] is True and run["rolled_back"] is True
    assert run["duplicates"] == 0 and run["lost_events"] == 0
    assert run["mttd_s"] is not None and run["mttr_s"] is not None
    faults = json.loads(docker_stack.cli("chaos", "status", "--json").stdout)["faults"]
    assert faults == []

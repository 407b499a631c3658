"""stack/compose.yaml with Debian's docker-compose 1.29 against the private engine, driven by
`chaosctl health`, `diagnose`, `remediate` and `game-day`, and the runbook's compose commands
verbatim."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docker.conftest import DockerStack
from tests.support import wait_for

STACK = Path(__file__).resolve().parents[2] / "stack"


@pytest.fixture
def compose_stack(engine, image) -> Iterator[DockerStack]:  # noqa: ANN001
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose is not installed: run scripts/engines.sh")
    stack = DockerStack(engine)
    # The SQLite files where game-day's integrity check reads them (compose.yaml's comment).
    data = stack.home / "data"
    data.mkdir()
    os.chown(data, 10001, -1)
    stack.env.update({"COMPOSE_FILE": str(STACK / "compose.yaml"),
                      "COMPOSE_PROJECT_NAME": stack.project,
                      "CHAOSCTL_ADMIN_TOKEN": secrets.token_hex(16),
                      "CHAOSCTL_DATA_DIR": str(data)})
    yield stack
    compose(stack, "down", "-v", "--timeout", "5")
    assert not stack.containers()
    shutil.rmtree(stack.home, ignore_errors=True)


def compose(stack: DockerStack, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker-compose", *args], env=stack.env, capture_output=True,
                            text=True, timeout=300, cwd=str(STACK))
    assert result.returncode == 0, f"docker-compose {' '.join(args)}:\n{result.stderr}"
    return result


def _diagnose(stack: DockerStack) -> dict:
    result = stack.cli("diagnose", "--json", timeout=60)
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_compose_stack_is_driven_by_chaosctl(compose_stack: DockerStack) -> None:
    stack = compose_stack
    compose(stack, "up", "-d")
    wait_for(lambda: stack.cli("health").returncode == 0, timeout=120, interval=1,
             what="chaosctl health green on the compose stack")
    assert _diagnose(stack)["firing"] == []
    # The runbook, verbatim: scale, restart, logs.
    compose(stack, "up", "-d", "--scale", "inventory=3")
    running = [c for c in stack.containers("inventory") if c.status == "running"]
    assert len(running) == 3
    compose(stack, "restart", "orders")
    compose(stack, "logs", "orders")
    # The docker backend sees the same project (Compose's labels) ...
    status = json.loads(stack.cli("stack", "status", "--json").stdout)
    assert [p["replica"] for p in status["processes"] if p["name"] == "inventory"] == [0, 1, 2]
    # ... and a service killed the Compose way is what diagnose names.
    compose(stack, "kill", "payments")
    data = wait_for(lambda: "service-down" in (d := _diagnose(stack))["firing"] and d,
                    timeout=60, interval=1, what="diagnose to fire service-down")
    assert "service-down" in data["firing"]
    # chaosctl repairs what Compose started: the service-down playbook starts payments again.
    fixed = stack.cli("remediate", "service-down", "--yes", "--json", timeout=180)
    assert fixed.returncode == 0, fixed.stdout[-2000:] + fixed.stderr[-2000:]
    assert json.loads(fixed.stdout)["recovered"] is True
    assert [c.status for c in stack.containers("payments")] == ["running"]
    wait_for(lambda: stack.cli("health").returncode == 0, timeout=120, interval=1,
             what="health green again after remediate")
    # A whole game day on the Compose stack, integrity check included (CHAOSCTL_DATA_DIR).
    day = stack.cli("game-day", "service-crash", "--rps", "10", "--baseline", "3s", "--hold",
                    "3s", "--duration", "60s", "--json", timeout=400)
    assert day.returncode == 0, day.stderr[-3000:]
    (run,) = json.loads(day.stdout)["results"]
    assert run["fired_playbook"] == "service-down" and run["duplicates"] == 0
    assert run["integrity"] is not None, run

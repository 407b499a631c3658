"""Fixtures for the docker backend's tests: a real engine of our own, the stack image, stacks.

Every test here is marked `docker` (and only `pytest -m docker` or a path under tests/docker
selects them: `make test` runs `-m "not slow and not docker"`). They need root, dockerd,
debootstrap and docker-compose (scripts/engines.sh installs them) and a Debian mirror plus
PyPI for the first image build; later builds use the cache ($CHAOSCTL_CACHE_DIR, else
~/.cache/chaosctl). When the engine cannot start they FAIL on CI (CI=true) and skip
elsewhere, saying why.

`engine` (session): dockerd on a private socket (tests/docker/private_engine.py), stopped by
PID at the end; teardown fails the run if it had to repair the machine.
`image` (session): `chaosctl stack build` against it, timed; the time is printed.
`docker_stack` (session): `chaosctl stack up --backend docker` on free ports with its own
CHAOSCTL_HOME and compose project; `stack down --purge` at the end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.docker.private_engine import EngineStartError, PrivateEngine, remove_root
from tests.support import free_ports, mark_directory

HERE = Path(__file__).parent
PORT_FIELDS = ("gateway", "orders", "payments", "inventory", "notifications", "redis",
               "prometheus")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "docker: the docker backend on a private dockerd (`pytest -m docker`, "
        "needs root and scripts/engines.sh)")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mark_directory(items, HERE, "docker")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"docker tests cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


def _say(config: pytest.Config, line: str) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(line)
    else:
        print(line, file=sys.stderr)


@pytest.fixture(scope="session")
def engine() -> Iterator[PrivateEngine]:
    root = Path(tempfile.mkdtemp(prefix="chaosctl-dockerd-", dir="/tmp"))
    eng = PrivateEngine(root)
    try:
        eng.start()
    except EngineStartError as exc:
        eng.stop()
        remove_root(eng)
        _unavailable(str(exc))
    try:
        yield eng
    finally:
        eng.stop()
        remove_root(eng)
    repaired = [p for p in eng.problems if not p.startswith("cleaning")]
    assert not repaired, f"the private engine left the machine changed: {repaired}"


class DockerStack:
    """One docker-backend stack: its env (DOCKER_HOST, CHAOSCTL_*), and the CLI."""

    def __init__(self, engine: PrivateEngine) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="chaosctl-docker-"))
        self.ports = dict(zip(PORT_FIELDS, free_ports(len(PORT_FIELDS)), strict=True))
        self.project = f"ct{uuid.uuid4().hex[:8]}"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("CHAOSCTL_", "DOCKER_", "COMPOSE_"))}
        env.update({f"CHAOSCTL_{k.upper()}_PORT": str(v) for k, v in self.ports.items()})
        env.update({"CHAOSCTL_HOME": str(self.home), "CHAOSCTL_BACKEND": "docker",
                    "CHAOSCTL_COMPOSE_PROJECT": self.project, "DOCKER_HOST": engine.url})
        if os.environ.get("CHAOSCTL_CACHE_DIR"):
            env["CHAOSCTL_CACHE_DIR"] = os.environ["CHAOSCTL_CACHE_DIR"]
        self.env = env
        self.engine = engine

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "chaosctl.cli.main", *args],
                              env=self.env, capture_output=True, text=True, timeout=timeout)

    def ok(self, *args: str, timeout: float = 300) -> str:
        result = self.cli(*args, timeout=timeout)
        assert result.returncode == 0, (f"chaosctl {' '.join(args)} -> {result.returncode}\n"
                                        f"{result.stdout}\n{result.stderr}")
        return result.stdout

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def client(self) -> Any:
        import docker

        return docker.DockerClient(base_url=self.engine.url)

    def containers(self, service: str | None = None) -> list[Any]:
        labels = [f"com.docker.compose.project={self.project}"]
        if service:
            labels.append(f"com.docker.compose.service={service}")
        return self.client().containers.list(all=True, filters={"label": labels})


@pytest.fixture(scope="session")
def image(engine: PrivateEngine, request: pytest.FixtureRequest) -> dict[str, float]:
    """The stack image, built once per run through the CLI; the build time is printed."""
    for tool in ("debootstrap", "docker-compose"):
        if shutil.which(tool) is None:
            _unavailable(f"{tool} is not installed: run scripts/engines.sh")
    handle = DockerStack(engine)
    started = time.monotonic()
    result = handle.cli("stack", "build", timeout=1500)
    elapsed = time.monotonic() - started
    shutil.rmtree(handle.home, ignore_errors=True)
    assert result.returncode == 0, f"stack build failed:\n{result.stdout}\n{result.stderr}"
    _say(request.config, f"\n[docker] first image build (chaosctl stack build): {elapsed:.1f}s "
                         f"-- {result.stdout.strip()}")
    return {"build_s": elapsed}


@pytest.fixture(scope="session")
def docker_stack(engine: PrivateEngine, image: dict[str, float],
                 request: pytest.FixtureRequest) -> Iterator[DockerStack]:
    handle = DockerStack(engine)
    started = time.monotonic()
    handle.ok("stack", "up")
    _say(request.config, f"\n[docker] stack up --backend docker: "
                         f"{time.monotonic() - started:.1f}s")
    try:
        yield handle
    finally:
        result = handle.cli("stack", "down", "--purge")
        left = handle.containers()
        shutil.rmtree(handle.home, ignore_errors=True)
        assert result.returncode == 0, result.stderr
        assert not left, f"containers left after down --purge: {[c.name for c in left]}"

"""Fixtures for end-to-end tests: the real `chaosctl` CLI against a real running stack.

`stack` (session scope) — ONE stack shared by every e2e test, started once with
`chaosctl stack up` on free loopback ports and a temporary CHAOSCTL_HOME, and stopped with
`chaosctl stack down --purge` at the end of the session (the teardown fails if any process it
recorded is still alive). It yields a `StackHandle`:

    stack.settings          chaosctl Settings (ports, home, urls: stack.settings.url("gateway"))
    stack.env               environment for subprocesses (CHAOSCTL_HOME + CHAOSCTL_*_PORT set,
                            any CHAOSCTL_* from the developer's shell removed)
    stack.home              the state directory (Path)
    stack.cli(*args, timeout=120) -> subprocess.CompletedProcess (text, stdout/stderr captured)
                            runs `python -m chaosctl.cli.main *args` with `stack.env`
    stack.status()          `stack status --json` parsed (dict)
    stack.pids(name=None)   {"NAME.REPLICA": pid} from the pid files in run/
    stack.admin_headers()   {"Authorization": "Bearer <token>"} for admin endpoints
    stack.url(service)      base URL of a service / redis / prometheus

Rules for tests using it: leave the stack as you found it (scale back, `start` what you killed,
`resume` what you paused, in a `finally`), and never `down` it. Tests that need their own stack
(up/down itself) use `make_stack`, a factory for separate, not-yet-started handles on other
ports, each torn down (down --purge + no process left) after the test. State dirs are private
`tempfile.mkdtemp` dirs (removed at teardown), not pytest's tmp_path, which concurrent pytest
runs may prune.

`processes_using(home)` — live PIDs whose cmdline/environment mention a state dir (for
"nothing left behind" checks that do not trust the pid files).

`clean_chaos` — clears chaos on payments and inventory (DELETE /chaos/config) before and after
the test, so no test sees another's faults.

`steady` — the session stack with every fault cleared, breakers closed and `chaosctl health`
green, before and after the test.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chaosctl.config import Settings
from chaosctl.runtime.procs import RunDir
from tests.support import free_ports, mark_directory


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Every test in this folder is `e2e`: `pytest -m "not e2e"` is the fast subset.
    mark_directory(items, Path(__file__).parent, "e2e")


PORT_FIELDS = ("gateway", "orders", "payments", "inventory", "notifications", "redis",
               "prometheus")


def processes_using(home: Path) -> list[int]:
    """PIDs of live processes whose command line or environment mentions `home`.

    Independent of the pid files, so it also catches a process the runtime lost track of.
    """
    needle = str(home).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            blob = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
        except (OSError, IndexError):
            continue
        if needle in blob:
            found.append(int(entry.name))
    return found


class StackHandle:
    """A stack's settings and a way to drive it through the CLI (see module docstring)."""

    def __init__(self, home: Path) -> None:
        ports = dict(zip(PORT_FIELDS, free_ports(len(PORT_FIELDS)), strict=True))
        self.home = home
        self.settings = Settings(home=home, **{f"{k}_port": v for k, v in ports.items()})
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHAOSCTL_")}
        env["CHAOSCTL_HOME"] = str(home)
        env.update({f"CHAOSCTL_{k.upper()}_PORT": str(v) for k, v in ports.items()})
        self.env = env

    def cli(self, *args: str, timeout: float = 120,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "chaosctl.cli.main", *args],
            env=env or self.env, capture_output=True, text=True, timeout=timeout,
        )

    def status(self) -> dict[str, Any]:
        result = self.cli("stack", "status", "--json")
        assert result.returncode in (0, 1), result.stderr
        return json.loads(result.stdout)  # type: ignore[no-any-return]

    def records(self) -> list[Any]:
        return RunDir(self.home / "run").records()[0]

    def pids(self, name: str | None = None) -> dict[str, int]:
        return {r.label: r.pid for r in self.records() if name is None or r.name == name}

    def url(self, service: str) -> str:
        return self.settings.url(service)

    def admin_headers(self) -> dict[str, str]:
        token = (self.home / "admin_token").read_text().strip()
        return {"Authorization": f"Bearer {token}"}

    def up(self) -> None:
        result = self.cli("stack", "up")
        assert result.returncode == 0, f"stack up failed:\n{result.stdout}\n{result.stderr}"

    def teardown(self) -> None:
        """down --purge, then prove that none of the recorded processes is alive."""
        records = self.records()
        # A home that never got a pid file (the refusal tests: bad input, nothing started)
        # needs no `down`, a whole CLI start; the stray check below still runs for it.
        if list((self.home / "run").glob("*.pid")) or processes_using(self.home):
            result = self.cli("stack", "down", "--purge")
            assert result.returncode == 0, result.stderr
        leftovers = [r.label for r in records if r.is_ours()]
        assert not leftovers, f"processes left after down: {leftovers}"
        strays = processes_using(self.home)
        for pid in strays:  # they carry our private home in their env: ours, never leak them
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        if not strays:
            shutil.rmtree(self.home, ignore_errors=True)
        assert not strays, f"processes still using {self.home} after down: {strays}"


def _private_home() -> Path:
    # Not pytest's tmp_path: a concurrent pytest session prunes old /tmp/pytest-of-* dirs,
    # which would delete a running stack's pid files under our feet.
    return Path(tempfile.mkdtemp(prefix="chaosctl-e2e-"))


@pytest.fixture(scope="session")
def stack() -> Iterator[StackHandle]:
    handle = StackHandle(_private_home())
    try:
        handle.up()
        yield handle
    finally:
        handle.teardown()


@pytest.fixture
def make_stack() -> Iterator[Callable[[], StackHandle]]:
    made: list[StackHandle] = []

    def factory() -> StackHandle:
        handle = StackHandle(_private_home())
        made.append(handle)
        return handle

    yield factory
    for handle in made:
        handle.teardown()


def _clear_chaos(handle: StackHandle) -> None:
    import httpx

    for service in ("payments", "inventory"):
        response = httpx.delete(f"{handle.url(service)}/chaos/config", timeout=10)
        assert response.status_code == 200, f"{service}: {response.status_code} {response.text}"


@pytest.fixture
def clean_chaos(stack: StackHandle) -> Iterator[StackHandle]:
    """The session stack with no chaos set on payments/inventory, before and after the test."""
    _clear_chaos(stack)
    yield stack
    _clear_chaos(stack)


def settle(handle: StackHandle) -> None:
    """No fault, every breaker closed, health green (what a game day's preflight insists on)."""
    import httpx

    from tests.support import wait_for

    handle.cli("chaos", "clear", "--all")
    for downstream in ("orders", "payments", "inventory", "notifications"):
        httpx.post(f"{handle.url('gateway')}/status/breakers/{downstream}/reset",
                   headers=handle.admin_headers(), timeout=10)
    wait_for(lambda: handle.cli("health", "--json").returncode == 0, timeout=120,
             interval=1.0, what="a healthy stack with no chaos")


@pytest.fixture
def steady(stack: StackHandle) -> Iterator[StackHandle]:
    """The session stack settled (see `settle`) before and after the test."""
    settle(stack)
    yield stack
    settle(stack)


@pytest.fixture
def chaos_stack(clean_chaos: StackHandle) -> Iterator[StackHandle]:
    """`clean_chaos`, then every fault cleared, services running and breakers reset after."""
    from tests.e2e.chaos_support import restore_stack

    try:
        yield clean_chaos
    finally:
        restore_stack(clean_chaos)

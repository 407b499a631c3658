"""Helpers shared by the test suites: free ports and condition polling (never fixed sleeps)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:  # the benchmarks import this module too: no pytest at run time for them
    import pytest

T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(n: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < n:
        ports.add(free_port())
    return sorted(ports)


def wait_for(
    condition: Callable[[], T | None | bool],
    timeout: float = 30.0,
    interval: float = 0.1,
    what: str = "condition",
) -> T:
    """Poll `condition` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value  # type: ignore[return-value]
        except Exception as exc:  # noqa: BLE001 - the condition may fail until ready
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last error: {last_exc!r}")


def mark_directory(items: Iterable[pytest.Item], directory: Path, marker: str) -> None:
    """Add `marker` to every collected test under `directory` (a conftest's own folder).

    Directory conftests call this from a `tryfirst` pytest_collection_modifyitems, so the
    marker is in place before `-m` deselects: `pytest -m "not e2e"` is the fast subset, and
    no test file has to remember to mark itself.
    """
    import pytest

    mark = getattr(pytest.mark, marker)
    for item in items:
        if directory in item.path.parents:
            item.add_marker(mark)


def iptables_rules() -> str:
    """The host's iptables rules (every table) as iptables-save prints them, without the
    timestamp comments and the chains' packet counters: two snapshots compare equal when
    the rules are the same. "" when iptables-save is not installed."""
    if shutil.which("iptables-save") is None:
        return ""
    out = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    return "\n".join(line.split(" [")[0] for line in out.splitlines()
                     if not line.startswith("#"))

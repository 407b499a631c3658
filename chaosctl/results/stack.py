"""`chaosctl stack status|up|down --json`."""

from __future__ import annotations

from typing import Literal

from chaosctl.results import Result

# A service's own /health status, or why there is none.
ProcessHealth = Literal["ok", "degraded", "down", "unreachable", "paused", "killed", "stopped"]


class ProcessEntry(Result):
    name: str
    replica: int
    pid: int | None  # None: expected but not running
    port: int
    alive: bool
    paused: bool
    health: ProcessHealth


class StackStatusResult(Result):
    """`stack status --json`; exit 0 exactly when healthy."""

    backend: str
    home: str
    processes: list[ProcessEntry]
    healthy: bool


class StackUpResult(StackStatusResult):
    """`stack up --json`: the status plus what this call started ("NAME.REPLICA")."""

    started: list[str]


class StoppedEntry(Result):
    """One item of `stack down --json` (a list)."""

    name: str
    replica: int
    pid: int
    how: Literal["terminated", "killed", "stale"]

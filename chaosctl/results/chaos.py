"""`chaosctl chaos status|clear|log --json` and `chaosctl inject ... --json`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from chaosctl.results import Keys, OpenResult, Result

AuditAction = Literal["inject", "clear", "revert", "finish", "undo"]
AuditOutcome = Literal["ok", "failed", "refused", "dry_run"]


class AuditEntry(Result):
    """One line of $CHAOSCTL_HOME/audit.log."""

    time: str  # ISO 8601, UTC
    ts: float  # the same moment, epoch seconds
    user: str
    pid: int
    command: str
    action: AuditAction
    fault: str | None
    target: str | None
    value: Any
    ttl_s: int | None
    outcome: AuditOutcome
    detail: str


class FaultSource(Result):
    """Who injected an active fault: the matching inject line of the audit log."""

    time: str  # ISO 8601, UTC
    user: str
    command: str
    pid: int


class ActiveFault(Result):
    kind: Literal["key", "killed", "paused", "worker"]
    fault: str  # the catalogue name: payment-errors, service-down, overload, ...
    target: str  # the Redis key, the service, or the worker id
    service: str
    value: Any
    ttl_s: int | float | None  # seconds until it ends by itself (null: unknown / never)
    detail: str
    source: FaultSource | None  # the inject it came from, when the audit log knows it


class ChaosStatusResult(Result):
    """`chaos status --json`; clean exactly when nothing is active and nothing failed."""

    clean: bool
    redis: Literal["ok", "unreachable"]
    faults: list[ActiveFault]
    problems: list[str]


class ClearAction(Result):
    action: str
    target: str
    how: str


class ClearResult(Result):
    """`chaos clear --json`; ok exactly when nothing is left and nothing failed."""

    target: str
    ok: bool
    actions: list[ClearAction]
    remaining: list[ActiveFault]
    problems: list[str]
    elapsed_s: float


class FaultRequestView(OpenResult):
    """The validated request; fault-specific params (rps, retries, ...) follow."""

    fault: str
    service: str | None
    value: int | float | None
    for_s: int | float | None
    ttl_s: int


class PlannedAction(Result):
    action: str
    target: str
    detail: str


class KeySet(Result):
    value: int | float
    ttl_s: int


class Worker(Result):
    id: str
    kind: Literal["overload", "retry-storm", "revert"]
    fault: str
    target: str
    pid: int
    starttime: int | None
    cmdline: list[str]
    started_at: float
    ends_at: float | None
    params: dict[str, Any]
    stats: dict[str, Any] | None


class InjectResult(Result):
    """`inject FAULT --json`: what was (with --dry-run: would be) done."""

    fault: str
    dry_run: bool
    request: FaultRequestView
    actions: list[PlannedAction]
    keys: Annotated[dict[str, KeySet], Keys('"chaos:..."')]
    worker: Worker | None
    expires_at: float | None

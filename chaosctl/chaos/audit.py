"""The audit trail: one JSON line per inject / clear / automatic revert, in
$CHAOSCTL_HOME/audit.log.

Lines are appended with a single write under an exclusive lock, so concurrent chaosctl
processes (a CLI and a detached reverter) never interleave half lines.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Outcomes an entry can carry.
OK, FAILED, REFUSED, DRY_RUN = "ok", "failed", "refused", "dry_run"


def audit_path(home: Path) -> Path:
    return Path(home).expanduser() / "audit.log"


def current_command() -> str:
    """The command line as the user typed it (argv[0] of `python -m` is a path: say chaosctl)."""
    return shlex.join(["chaosctl", *sys.argv[1:]])


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        return str(os.getuid())


def append(home: Path, *, action: str, fault: str | None, outcome: str,
           value: Any = None, ttl_s: int | None = None, target: str | None = None,
           command: str | None = None, detail: str = "") -> dict[str, Any]:
    """Append one entry and return it. Never raises for a full disk: auditing must not block a
    halt, so an OSError is reported in the returned entry instead."""
    now = time.time()
    entry = {
        "time": datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds"),
        "ts": round(now, 3),
        "user": _user(),
        "pid": os.getpid(),
        "command": command if command is not None else current_command(),
        "action": action,
        "fault": fault,
        "target": target,
        "value": value,
        "ttl_s": ttl_s,
        "outcome": outcome,
        "detail": detail,
    }
    line = (json.dumps(entry, sort_keys=True, default=str) + "\n").encode()
    path = audit_path(home)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError as exc:
        entry["audit_error"] = str(exc)
    return entry


def read(home: Path, tail: int | None = None) -> list[dict[str, Any]]:
    """Entries oldest first (the last `tail` when given); unreadable lines are skipped."""
    try:
        lines = audit_path(home).read_text().splitlines()
    except FileNotFoundError:
        return []
    entries = []
    for line in lines:
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict):
            entries.append(item)
    return entries[-tail:] if tail else entries


def last_source(entries: list[dict[str, Any]], fault: str | None,
                target: str | None) -> dict[str, Any] | None:
    """Where an active fault came from: the latest successful inject matching it."""
    for entry in reversed(entries):
        if entry.get("action") != "inject" or entry.get("outcome") != OK:
            continue
        if fault is not None and entry.get("fault") != fault:
            continue
        if target is not None and entry.get("target") != target:
            continue
        return {k: entry.get(k) for k in ("time", "user", "command", "pid")}
    return None

"""Detached chaos processes (bursts, retry storms, timed reverts), recorded in the state dir.

Each worker writes its own record, `$CHAOSCTL_HOME/chaos/ID.json`, as the first thing it does
(pid, kernel start time, exact command line), so a worker is findable even when the chaosctl
that launched it was SIGKILLed a moment later. `chaos clear` stops workers by PID, and only
after /proc shows the same start time and command line: a reused PID is never signalled.

Kept in runtime (not chaos) because the backends stop these processes too (`stack down`
stops them first), and runtime must not import chaos.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chaosctl.runtime.procs import is_same_process, proc_cmdline, proc_starttime, signal_group

KINDS = ("overload", "retry-storm", "revert")


@dataclass
class WorkerRecord:
    id: str
    kind: str  # overload | retry-storm | revert
    fault: str  # the fault that started it (service-down, overload, ...)
    target: str  # the service it acts on
    pid: int
    starttime: int | None
    cmdline: list[str]
    started_at: float
    ends_at: float | None  # when it stops / reverts by itself
    params: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] | None = None  # live load stats, refreshed by the worker

    def is_alive(self) -> bool:
        """True while this PID is still the very worker that wrote the record."""
        return is_same_process(self.pid, self.starttime, self.cmdline)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def new_id(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:8]}"


class WorkerStore:
    def __init__(self, home: Path) -> None:
        self.path = Path(home).expanduser() / "chaos"

    def file(self, worker_id: str) -> Path:
        return self.path / f"{worker_id}.json"

    def write(self, record: WorkerRecord) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        target = self.file(record.id)
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record.to_json(), sort_keys=True))
        os.replace(tmp, target)  # readers never see half a record

    def remove(self, worker_id: str) -> None:
        self.file(worker_id).unlink(missing_ok=True)

    def get(self, worker_id: str) -> WorkerRecord | None:
        try:
            return WorkerRecord(**json.loads(self.file(worker_id).read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def records(self) -> list[WorkerRecord]:
        """Every readable record; unreadable ones are deleted (a worker rewrites its own)."""
        found = []
        for path in sorted(self.path.glob("*.json")):
            try:
                found.append(WorkerRecord(**json.loads(path.read_text())))
            except (OSError, ValueError, TypeError):
                path.unlink(missing_ok=True)
        return found

    def live(self) -> list[WorkerRecord]:
        """Records of workers still running; records of dead workers are removed."""
        alive = []
        for rec in self.records():
            if rec.is_alive():
                alive.append(rec)
            else:
                self.remove(rec.id)
        return alive

    def stop(self, record: WorkerRecord, grace_s: float = 20.0) -> str:
        """SIGTERM (a reverter mid-restart finishes it first), SIGKILL after `grace_s`.

        Returns "stopped", "killed" or "gone" (was not running: nothing signalled).
        """
        how = "gone"
        if record.is_alive():
            _signal(record, signal.SIGTERM)
            how = "stopped"
            deadline = time.monotonic() + grace_s
            while record.is_alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            if record.is_alive():
                _signal(record, signal.SIGKILL)
                how = "killed"
                deadline = time.monotonic() + 5
                while record.is_alive() and time.monotonic() < deadline:
                    time.sleep(0.05)
        self.remove(record.id)
        return how


def _signal(record: WorkerRecord, sig: int) -> None:
    # Workers run in their own session (pgid == pid): the group takes any child along.
    signal_group(record.pid, sig)


def self_record(worker_id: str, kind: str, fault: str, target: str, ends_at: float | None,
                params: dict[str, Any]) -> WorkerRecord:
    """The record a worker writes about itself."""
    pid = os.getpid()
    return WorkerRecord(worker_id, kind, fault, target, pid, proc_starttime(pid),
                        proc_cmdline(pid) or [], time.time(), ends_at, params)

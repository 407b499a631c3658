"""The JSON journal: one file per remediation run in $CHAOSCTL_HOME/journal/.

A listener of the engine. The file is rewritten (atomically) after every step, so a run that
is interrupted or crashes still leaves a journal of what it did. Shape:

    {"playbook": str, "title": str, "dry_run": bool, "started_at": float,
     "ended_at": float|null, "status": "running|recovered|not_recovered|not_firing|dry_run",
     "steps": [{"phase", "name", "action", "params", "status", "started_at", "ended_at",
                "duration_s", "output", "error"}],
     "verify": {...}, "still_failing": [str], "error": str|null}

A write that fails (a full disk, a read-only home) raises to the engine's event bus, which
logs it and carries on with the run; `current_path` is then None, so a result never points
at a journal that is missing or stale.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from pathlib import Path
from typing import Any

from chaosctl.events import Event

_writers = itertools.count()


class JournalWriter:
    """The engine's journal listener (it reads engine events and ignores the others)."""

    def __init__(self, home: Path) -> None:
        self.dir = Path(home) / "journal"
        self.paths: list[Path] = []  # every journal this writer started, oldest first
        # Each write goes through this scratch file, then an atomic rename.
        self.tmp_path = self.dir / f".writing-{os.getpid()}-{next(_writers)}.tmp"
        self._doc: dict[str, Any] | None = None
        self._path: Path | None = None
        self._written = False  # the current run's latest write succeeded

    @property
    def last_path(self) -> Path | None:
        return self.paths[-1] if self.paths else None

    @property
    def current_path(self) -> Path | None:
        """The latest run's journal, if its latest write succeeded (None for a dry run)."""
        return self._path if self._written else None

    def __call__(self, event: Event) -> None:
        if event.source != "engine":
            return
        if event.kind == "run_start":
            self._doc, self._path, self._written = None, None, False
        if event.kind == "run_start" and event.data.get("dry_run"):
            pass  # a dry run changes nothing, not even the journal directory
        elif event.kind == "run_start":
            stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(event.at))
            millis = int((event.at % 1) * 1000)
            self._path = self.dir / f"{stamp}.{millis:03d}-{os.getpid()}-{event.subject}.json"
            self.paths.append(self._path)
            self._doc = {"playbook": event.subject, "title": event.data.get("title"),
                         "dry_run": bool(event.data.get("dry_run")), "started_at": event.at,
                         "ended_at": None, "status": "running", "steps": [], "verify": {},
                         "still_failing": [], "error": None}
            self._write()
        elif self._doc is None:
            return
        elif event.kind == "step_end":
            self._doc["steps"].append(event.data["step"])
            self._write()
        elif event.kind == "run_end":
            result = event.data["result"]  # shared with the other listeners: read only
            for key in ("status", "ended_at", "verify", "still_failing", "error", "steps"):
                self._doc[key] = result[key]
            if result.get("plan"):
                self._doc["plan"] = result["plan"]
            self._write()
            self._doc = None

    def _write(self) -> None:
        assert self._path is not None
        self._written = False
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tmp_path.write_text(json.dumps(self._doc, indent=2, default=str))
        self.tmp_path.replace(self._path)
        self._written = True

"""Reading the stack's log files: the tail shown when a start fails, and `stack logs`."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path


def log_tail(path: str | Path, lines: int = 15) -> str:
    """The last `lines` lines of a log, for error messages."""
    try:
        with open(path, errors="replace") as fh:
            return "".join(deque(fh, maxlen=lines)).rstrip() or "(log is empty)"
    except OSError:
        return "(no log file)"


def read_logs(files: list[Path], tail: int, follow: bool,
              poll_interval: float = 0.25) -> Iterator[str]:
    """The last `tail` lines of each file, then (with `follow`) new lines as they are written.

    Lines are prefixed with `[name.replica]` when several files are read. Following never ends
    by itself: the caller stops iterating (the CLI does on Ctrl-C).
    """
    prefix = len(files) > 1
    offsets: dict[Path, int] = {}

    def fmt(path: Path, lines: list[str]) -> Iterator[str]:
        for line in lines:
            yield f"[{path.stem}] {line}" if prefix else line

    for path in files:
        data = path.read_bytes()
        offsets[path] = len(data)
        lines = data.decode(errors="replace").splitlines()
        yield from fmt(path, lines[-tail:] if tail > 0 else [])
    while follow:
        for path in files:
            with open(path, "rb") as fh:
                fh.seek(offsets[path])
                chunk = fh.read()
            complete = chunk[: chunk.rfind(b"\n") + 1]  # hold back a half-written line
            offsets[path] += len(complete)
            yield from fmt(path, complete.decode(errors="replace").splitlines())
        time.sleep(poll_interval)

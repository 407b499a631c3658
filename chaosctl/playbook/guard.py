"""Remediation guardrails: one remediation at a time, and a cap on actions per incident.

- Lock: an exclusive `fcntl.flock` on $CHAOSCTL_HOME/run/remediation.lock, taken without
  waiting; the holder writes its pid and playbook into the file so a refusal names it. The
  kernel drops the lock when the holder dies, so a crashed run never blocks the next one.
- Cap: at most `cap` mutating actions per playbook within `window_s` (defaults 10 per 600 s,
  or CHAOSCTL_REMEDIATION_CAP / CHAOSCTL_REMEDIATION_WINDOW_S). A remediation that does not
  fix the stack cannot loop forever under `watch`. Counts live in run/remediation_actions.json
  and are only touched while the lock is held.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from chaosctl.errors import ChaosctlError, ExitCode, RemediationLockedError

DEFAULT_CAP = 10
DEFAULT_WINDOW_S = 600.0


class ActionCapError(ChaosctlError):
    """The playbook already used its actions for this window (no remediation loops)."""

    exit_code = ExitCode.UNHEALTHY


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ChaosctlError(f"{name}={raw!r} is not a number", hint=f"e.g. {name}={default:g}") \
            from exc
    if value < 0:
        raise ChaosctlError(f"{name} cannot be negative")
    return value


class RemediationGuard:
    def __init__(self, home: Path, cap: int | None = None,
                 window_s: float | None = None,
                 counts_file: str = "remediation_actions.json") -> None:
        run = Path(home) / "run"
        self.lock_path = run / "remediation.lock"
        # A game day counts its own actions: each scenario is a separate, injected incident,
        # and its rehearsals must not use up (or be blocked by) the real incidents' window.
        self.counts_path = run / counts_file
        self.cap = int(cap if cap is not None else _env_number("CHAOSCTL_REMEDIATION_CAP",
                                                                DEFAULT_CAP))
        self.window_s = (window_s if window_s is not None
                         else _env_number("CHAOSCTL_REMEDIATION_WINDOW_S", DEFAULT_WINDOW_S))
        self._held = False

    @contextmanager
    def lock(self, playbook: str) -> Iterator[None]:
        """Hold the remediation lock; RemediationLockedError at once if someone else has it."""
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 512, 0).decode(errors="replace").strip() or "unknown"
                raise RemediationLockedError(
                    f"another remediation is running ({holder}); not starting {playbook}",
                    hint=f"wait for it to finish (lock: {self.lock_path})",
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}, playbook {playbook}, since "
                          f"{time.strftime('%H:%M:%S')}".encode(), 0)
            self._held = True
            try:
                yield
            finally:
                self._held = False
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _load(self) -> dict[str, list[float]]:
        try:
            data = json.loads(self.counts_path.read_text())
        except (OSError, ValueError):
            return {}
        return {k: [float(t) for t in v] for k, v in data.items() if isinstance(v, list)}

    def used(self, playbook: str, now: float | None = None) -> int:
        now = time.time() if now is None else now
        return sum(1 for t in self._load().get(playbook, []) if now - t < self.window_s)

    def remaining(self, playbook: str) -> int:
        return max(0, self.cap - self.used(playbook))

    def consume(self, playbook: str, action: str) -> None:
        """Count one mutating action; ActionCapError when the cap is reached (nothing counted)."""
        if not self._held:
            raise RuntimeError("consume() needs the remediation lock")
        now = time.time()
        data = self._load()
        recent = [t for t in data.get(playbook, []) if now - t < self.window_s]
        if len(recent) >= self.cap:
            raise ActionCapError(
                f"action cap reached for {playbook}: {len(recent)} actions in the last "
                f"{self.window_s:g}s (cap {self.cap}); not running {action}",
                hint="the remediation is not fixing the incident: investigate by hand, or "
                     "raise CHAOSCTL_REMEDIATION_CAP",
            )
        data[playbook] = [*recent, now]
        tmp = self.counts_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self.counts_path)

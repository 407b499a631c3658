"""Time sources. Everything time-based takes a clock so tests can drive time by hand."""

from __future__ import annotations

import threading
from collections.abc import Callable

# Monotonic seconds: durations and windows must not jump when the wall clock is adjusted.
Clock = Callable[[], float]


class FakeClock:
    """A manually advanced monotonic clock for tests (thread-safe, starts at 1000.0)."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a monotonic clock cannot go backwards")
        with self._lock:
            self._now += seconds

"""Circuit breaker: stop calling a downstream that is failing, probe it, and close again.

CLOSED records outcomes in a sliding window and opens when the failure rate reaches the
threshold (never on fewer than `minimum_calls` calls). OPEN rejects everything for
`open_duration_s`, then HALF_OPEN hands out exactly `half_open_probes` permits: all succeed
-> CLOSED with a fresh window, any fails -> OPEN again, any unresolved for `probe_timeout_s`
-> OPEN (a hung probe must not wedge the breaker half-open forever). A permit released
without an outcome (the call never reached the downstream) counts nothing and, if it was a
probe, gives its slot back.

One threading.Lock guards all state, so the probe limit holds for threads and for asyncio
tasks alike; the state-change callback runs after the lock is released so it may read the
breaker (e.g. to export a gauge) without deadlocking.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from .clock import Clock
from .window import SlidingCounts


class BreakerState(IntEnum):
    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


_STATE_NAMES = {
    BreakerState.CLOSED: "closed",
    BreakerState.OPEN: "open",
    BreakerState.HALF_OPEN: "half_open",
}


@dataclass(frozen=True)
class BreakerConfig:
    failure_rate_threshold: float = 0.5
    window_s: float = 10.0
    minimum_calls: int = 10
    open_duration_s: float = 30.0
    half_open_probes: int = 3
    probe_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if not 0.0 < self.failure_rate_threshold <= 1.0:
            raise ValueError("failure_rate_threshold must be in (0, 1]")
        if self.minimum_calls < 1 or self.half_open_probes < 1:
            raise ValueError("minimum_calls and half_open_probes must be >= 1")
        if self.window_s <= 0 or self.open_duration_s < 0 or self.probe_timeout_s <= 0:
            raise ValueError("window_s and probe_timeout_s must be > 0, open_duration_s >= 0")


class Permit:
    """Leave to make one call; resolve it exactly once (later resolutions are ignored):
    `success()` / `failure()` when the downstream answered (or failed to), `release()` when
    the call was never sent (refused locally, or no time left), so it says nothing about
    the downstream.

    A permit remembers the breaker epoch it was issued in, so an outcome that arrives after
    the breaker has moved on (e.g. a slow call finishing after the breaker opened, or a
    probe resolving after it was declared hung) cannot corrupt the new state.
    """

    __slots__ = ("_breaker", "_epoch", "_probe_id", "_done")

    def __init__(self, breaker: CircuitBreaker, epoch: int, probe_id: int | None) -> None:
        self._breaker = breaker
        self._epoch = epoch
        self._probe_id = probe_id
        self._done = False

    @property
    def is_probe(self) -> bool:
        return self._probe_id is not None

    def success(self) -> None:
        self._resolve(ok=True)

    def failure(self) -> None:
        self._resolve(ok=False)

    def release(self) -> None:
        """Resolve without an outcome: the window's counts and the state stay as they are;
        a half-open probe's slot is freed and may be handed out again."""
        self._resolve(ok=None)

    def _resolve(self, ok: bool | None) -> None:
        # The flag is checked and set under the breaker's lock: two threads reporting the
        # same permit must still count once.
        self._breaker._record(self, ok)


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        config: BreakerConfig = BreakerConfig(),  # noqa: B008 - frozen, safe to share
        clock: Clock = time.monotonic,
        wall: Callable[[], float] = time.time,
        on_state_change: Callable[[str, BreakerState], None] | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self._clock = clock
        self._wall = wall
        self._on_state_change = on_state_change
        self._lock = threading.Lock()
        self._window = SlidingCounts(config.window_s, ("success", "failure"), clock)
        self._state = BreakerState.CLOSED
        self._epoch = 0  # bumped on every transition; permits from older epochs are ignored
        self._opened_mono: float | None = None
        self._opened_wall: float | None = None
        self._probes_issued = 0
        self._probes_succeeded = 0
        self._probes_outstanding: dict[int, float] = {}  # probe id -> issued at (monotonic)
        self._probe_ids = itertools.count(1)

    # -- public API -----------------------------------------------------------------------

    @property
    def state(self) -> BreakerState:
        changes: list[BreakerState] = []
        with self._lock:
            self._advance_time(changes)
            state = self._state
        self._notify(changes)
        return state

    def try_acquire(self) -> Permit | None:
        """A permit to call the downstream, or None when the breaker rejects the call."""
        changes: list[BreakerState] = []
        with self._lock:
            self._advance_time(changes)
            permit: Permit | None = None
            if self._state is BreakerState.CLOSED:
                permit = Permit(self, self._epoch, None)
            elif (
                self._state is BreakerState.HALF_OPEN
                and self._probes_issued < self.config.half_open_probes
            ):
                self._probes_issued += 1
                probe_id = next(self._probe_ids)
                self._probes_outstanding[probe_id] = self._clock()
                permit = Permit(self, self._epoch, probe_id)
        self._notify(changes)
        return permit

    def reset(self) -> None:
        """Force CLOSED with an empty window (operator action)."""
        changes: list[BreakerState] = []
        with self._lock:
            self._transition(BreakerState.CLOSED, changes)
            self._window.clear()
        self._notify(changes)

    def snapshot(self) -> dict:
        changes: list[BreakerState] = []
        with self._lock:
            self._advance_time(changes)
            totals = self._window.totals()
            calls = totals["success"] + totals["failure"]
            next_probe_at = None
            if self._state is BreakerState.OPEN and self._opened_wall is not None:
                next_probe_at = self._opened_wall + self.config.open_duration_s
            snap = {
                "state": _STATE_NAMES[self._state],
                "state_code": int(self._state),
                "failure_rate": (totals["failure"] / calls) if calls else 0.0,
                "calls_in_window": calls,
                "opened_at": None if self._state is BreakerState.CLOSED else self._opened_wall,
                "next_probe_at": next_probe_at,
            }
        self._notify(changes)
        return snap

    # -- internals (call with the lock held unless noted) --------------------------------

    def _record(self, permit: Permit, ok: bool | None) -> None:
        changes: list[BreakerState] = []
        with self._lock:
            if permit._done:
                return
            permit._done = True
            self._advance_time(changes)
            if permit._epoch == self._epoch:
                if ok is None:
                    self._release(permit._probe_id)
                elif permit._probe_id is None:
                    self._record_closed(ok, changes)
                else:
                    self._record_probe(permit._probe_id, ok, changes)
        self._notify(changes)

    def _record_closed(self, ok: bool, changes: list[BreakerState]) -> None:
        if self._state is not BreakerState.CLOSED:
            return
        self._window.add("success" if ok else "failure")
        if ok:
            return
        totals = self._window.totals()
        calls = totals["success"] + totals["failure"]
        if (
            calls >= self.config.minimum_calls
            and totals["failure"] / calls >= self.config.failure_rate_threshold
        ):
            self._transition(BreakerState.OPEN, changes)

    def _release(self, probe_id: int | None) -> None:
        # Only a probe of the current half-open period holds something to give back.
        if probe_id is None or self._state is not BreakerState.HALF_OPEN:
            return
        if self._probes_outstanding.pop(probe_id, None) is not None:
            self._probes_issued -= 1

    def _record_probe(self, probe_id: int, ok: bool, changes: list[BreakerState]) -> None:
        if self._state is not BreakerState.HALF_OPEN:
            return
        self._probes_outstanding.pop(probe_id, None)
        if not ok:
            self._transition(BreakerState.OPEN, changes)
            return
        self._probes_succeeded += 1
        if self._probes_succeeded >= self.config.half_open_probes:
            self._transition(BreakerState.CLOSED, changes)
            self._window.clear()

    def _advance_time(self, changes: list[BreakerState]) -> None:
        now = self._clock()
        if self._state is BreakerState.OPEN:
            assert self._opened_mono is not None
            if now - self._opened_mono >= self.config.open_duration_s:
                self._transition(BreakerState.HALF_OPEN, changes)
        elif self._state is BreakerState.HALF_OPEN and self._probes_outstanding:
            oldest = min(self._probes_outstanding.values())
            if now - oldest >= self.config.probe_timeout_s:
                self._transition(BreakerState.OPEN, changes)

    def _transition(self, new: BreakerState, changes: list[BreakerState]) -> None:
        changed = new is not self._state
        self._state = new
        self._epoch += 1
        self._probes_issued = 0
        self._probes_succeeded = 0
        self._probes_outstanding.clear()
        if new is BreakerState.OPEN:
            self._opened_mono = self._clock()
            self._opened_wall = self._wall()
        elif new is BreakerState.CLOSED:
            self._opened_mono = None
            self._opened_wall = None
        if changed:  # a reset of a closed breaker is not a transition worth reporting
            changes.append(new)

    def _notify(self, changes: list[BreakerState]) -> None:
        # Called without the lock held.
        if self._on_state_change is not None:
            for new in changes:
                self._on_state_change(self.name, new)

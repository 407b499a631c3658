"""Permit.release(): a call that never reached the downstream (bulkhead full, deadline gone
before sending) resolves its permit without an outcome. Driven by a FakeClock."""

from __future__ import annotations

import pytest
from shop.resilience import BreakerConfig, BreakerState, CircuitBreaker, FakeClock

CFG = BreakerConfig(failure_rate_threshold=0.5, window_s=10.0, minimum_calls=10,
                    open_duration_s=30.0, half_open_probes=2, probe_timeout_s=5.0)


def make() -> tuple[CircuitBreaker, FakeClock, list[BreakerState]]:
    clock = FakeClock()
    changes: list[BreakerState] = []
    breaker = CircuitBreaker("inventory", CFG, clock=clock, wall=lambda: 1e9 + clock(),
                             on_state_change=lambda _n, s: changes.append(s))
    return breaker, clock, changes


def call(breaker: CircuitBreaker, ok: bool) -> None:
    permit = breaker.try_acquire()
    assert permit is not None
    permit.success() if ok else permit.failure()


def half_open(breaker: CircuitBreaker, clock: FakeClock) -> None:
    for _ in range(CFG.minimum_calls):
        call(breaker, ok=False)
    clock.advance(CFG.open_duration_s)
    assert breaker.state is BreakerState.HALF_OPEN


def test_release_while_closed_counts_nothing() -> None:
    breaker, _, changes = make()
    for ok in (True, False, False):
        call(breaker, ok)
    before = breaker.snapshot()
    for _ in range(50):
        permit = breaker.try_acquire()
        assert permit is not None
        permit.release()
    after = breaker.snapshot()
    assert after["calls_in_window"] == before["calls_in_window"] == 3
    assert after["failure_rate"] == pytest.approx(2 / 3)
    assert breaker.state is BreakerState.CLOSED and changes == []


def test_released_calls_do_not_dilute_the_failure_rate() -> None:
    # What a full bulkhead did when it reported success: 6 real failures of 10 calls open
    # the breaker whatever number of locally refused calls happened in between.
    breaker, _, changes = make()
    for i in range(10):
        for _ in range(5):
            refused = breaker.try_acquire()
            assert refused is not None
            refused.release()
        call(breaker, ok=i < 4)
    assert breaker.state is BreakerState.OPEN
    assert changes == [BreakerState.OPEN]
    assert breaker.snapshot()["calls_in_window"] == 10


def test_release_frees_a_probe_slot_and_leaves_the_state() -> None:
    breaker, clock, changes = make()
    half_open(breaker, clock)
    probes = [breaker.try_acquire() for _ in range(CFG.half_open_probes)]
    assert all(p is not None and p.is_probe for p in probes)
    assert breaker.try_acquire() is None  # every slot taken
    probes[0].release()
    assert breaker.state is BreakerState.HALF_OPEN
    again = breaker.try_acquire()  # the freed slot, handed out again
    assert again is not None and again.is_probe
    assert breaker.try_acquire() is None
    # the released probe did not count as one of the successes needed to close
    probes[1].success()
    assert breaker.state is BreakerState.HALF_OPEN
    again.success()
    assert breaker.state is BreakerState.CLOSED
    assert changes == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


def test_a_released_probe_cannot_hang_the_breaker_open() -> None:
    # Its issue time is forgotten, so it never trips the hung-probe timeout.
    breaker, clock, _ = make()
    half_open(breaker, clock)
    probe = breaker.try_acquire()
    assert probe is not None
    probe.release()
    clock.advance(CFG.probe_timeout_s * 3)
    assert breaker.state is BreakerState.HALF_OPEN


def test_release_is_final_and_only_once() -> None:
    breaker, clock, _ = make()
    half_open(breaker, clock)
    probe = breaker.try_acquire()
    assert probe is not None
    probe.release()
    probe.release()  # a second release must not free a second slot
    probe.failure()  # nor may a later outcome count
    assert breaker.state is BreakerState.HALF_OPEN
    granted = [breaker.try_acquire() for _ in range(CFG.half_open_probes + 1)]
    assert sum(p is not None for p in granted) == CFG.half_open_probes


def test_release_after_an_outcome_changes_nothing() -> None:
    breaker, clock, _ = make()
    half_open(breaker, clock)
    probe = breaker.try_acquire()
    assert probe is not None
    probe.success()
    probe.release()  # already resolved: the success stands, no slot comes back
    other = breaker.try_acquire()
    assert other is not None
    assert breaker.try_acquire() is None


def test_release_from_an_older_epoch_frees_nothing() -> None:
    breaker, clock, _ = make()
    half_open(breaker, clock)
    stale = breaker.try_acquire()
    assert stale is not None
    clock.advance(CFG.probe_timeout_s)  # declared hung: OPEN again
    assert breaker.state is BreakerState.OPEN
    clock.advance(CFG.open_duration_s)
    assert breaker.state is BreakerState.HALF_OPEN
    fresh = [breaker.try_acquire() for _ in range(CFG.half_open_probes)]
    assert all(p is not None for p in fresh)
    stale.release()  # belongs to the previous half-open period
    assert breaker.try_acquire() is None

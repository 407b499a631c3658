"""Circuit breaker state machine, driven by a FakeClock (no sleeping)."""

from __future__ import annotations

import asyncio
import threading

import pytest
from shop.resilience import BreakerConfig, BreakerState, CircuitBreaker, FakeClock

CFG = BreakerConfig(
    failure_rate_threshold=0.5,
    window_s=10.0,
    minimum_calls=10,
    open_duration_s=30.0,
    half_open_probes=3,
    probe_timeout_s=5.0,
)


class Wall:
    """Wall clock that moves with the fake monotonic clock, from a fixed epoch."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    def __call__(self) -> float:
        return 1_700_000_000.0 + self.clock()


def make(cfg: BreakerConfig = CFG) -> tuple[CircuitBreaker, FakeClock, list]:
    clock = FakeClock()
    changes: list[tuple[str, BreakerState]] = []
    breaker = CircuitBreaker(
        "payments", cfg, clock=clock, wall=Wall(clock),
        on_state_change=lambda n, s: changes.append((n, s)),
    )
    return breaker, clock, changes


def call(breaker: CircuitBreaker, ok: bool) -> None:
    permit = breaker.try_acquire()
    assert permit is not None, "breaker rejected a call while it should admit it"
    permit.success() if ok else permit.failure()


def trip(breaker: CircuitBreaker) -> None:
    for _ in range(CFG.minimum_calls):
        call(breaker, ok=False)
    assert breaker.state is BreakerState.OPEN


def test_opens_exactly_when_failure_rate_reaches_threshold() -> None:
    breaker, _, changes = make()
    for _ in range(6):
        call(breaker, ok=True)
    for _ in range(5):  # 5/11 = 45 % < 50 %
        call(breaker, ok=False)
    assert breaker.state is BreakerState.CLOSED
    call(breaker, ok=False)  # 6/12 = 50 %: reaches the threshold
    assert breaker.state is BreakerState.OPEN
    assert changes == [("payments", BreakerState.OPEN)]
    snap = breaker.snapshot()
    assert snap["state"] == "open" and snap["state_code"] == 1
    assert snap["failure_rate"] == pytest.approx(0.5)
    assert snap["calls_in_window"] == 12
    assert snap["next_probe_at"] == pytest.approx(snap["opened_at"] + CFG.open_duration_s)


def test_never_opens_below_minimum_calls() -> None:
    breaker, _, changes = make()
    for _ in range(CFG.minimum_calls - 1):  # 100 % failures, but one call short
        call(breaker, ok=False)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.snapshot()["failure_rate"] == 1.0
    assert changes == []
    call(breaker, ok=False)
    assert breaker.state is BreakerState.OPEN


def test_old_outcomes_slide_out_of_the_window() -> None:
    breaker, clock, _ = make()
    for _ in range(9):
        call(breaker, ok=False)
    clock.advance(CFG.window_s + 1)  # those 9 failures are forgotten
    assert breaker.snapshot()["calls_in_window"] == 0
    for _ in range(9):
        call(breaker, ok=False)
    assert breaker.state is BreakerState.CLOSED


def test_success_does_not_open_and_open_rejects_until_duration() -> None:
    breaker, clock, _ = make()
    trip(breaker)
    assert breaker.try_acquire() is None
    clock.advance(CFG.open_duration_s - 0.001)
    assert breaker.try_acquire() is None
    assert breaker.state is BreakerState.OPEN
    clock.advance(0.001)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.snapshot()["next_probe_at"] is None


def test_half_open_successes_close_with_fresh_window() -> None:
    breaker, clock, changes = make()
    trip(breaker)
    clock.advance(CFG.open_duration_s)
    probes = [breaker.try_acquire() for _ in range(CFG.half_open_probes)]
    assert all(p is not None and p.is_probe for p in probes)
    assert breaker.try_acquire() is None  # all probe slots taken
    for p in probes[:-1]:
        p.success()
    assert breaker.state is BreakerState.HALF_OPEN  # not until every probe succeeded
    probes[-1].success()
    assert breaker.state is BreakerState.CLOSED
    snap = breaker.snapshot()
    assert snap["calls_in_window"] == 0 and snap["opened_at"] is None
    assert [s for _, s in changes] == [
        BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED,
    ]
    # the fresh window needs minimum_calls again before it can open
    for _ in range(CFG.minimum_calls - 1):
        call(breaker, ok=False)
    assert breaker.state is BreakerState.CLOSED


def test_half_open_probe_failure_reopens_with_new_opened_at() -> None:
    breaker, clock, _ = make()
    trip(breaker)
    first_opened = breaker.snapshot()["opened_at"]
    clock.advance(CFG.open_duration_s)
    a, b = breaker.try_acquire(), breaker.try_acquire()
    assert a is not None and b is not None
    a.success()
    b.failure()
    assert breaker.state is BreakerState.OPEN
    assert breaker.snapshot()["opened_at"] == pytest.approx(first_opened + CFG.open_duration_s)
    assert breaker.try_acquire() is None


def test_hung_probe_reopens_breaker() -> None:
    breaker, clock, changes = make()
    trip(breaker)
    clock.advance(CFG.open_duration_s)
    hung = breaker.try_acquire()
    assert hung is not None
    for _ in range(CFG.half_open_probes - 1):
        p = breaker.try_acquire()
        assert p is not None
        p.success()
    clock.advance(CFG.probe_timeout_s - 0.01)
    assert breaker.state is BreakerState.HALF_OPEN
    clock.advance(0.01)
    assert breaker.state is BreakerState.OPEN
    # the late answer of the hung probe belongs to an old epoch and changes nothing
    hung.success()
    assert breaker.state is BreakerState.OPEN
    # and the breaker is not wedged: it probes again after the next open period
    clock.advance(CFG.open_duration_s)
    probes = [breaker.try_acquire() for _ in range(CFG.half_open_probes)]
    for p in probes:
        assert p is not None
        p.success()
    assert breaker.state is BreakerState.CLOSED
    assert [s for _, s in changes][-4:] == [
        BreakerState.HALF_OPEN, BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED,
    ]


def test_permit_is_idempotent() -> None:
    breaker, _, _ = make()
    permit = breaker.try_acquire()
    assert permit is not None
    permit.failure()
    permit.failure()
    permit.success()
    assert breaker.snapshot()["calls_in_window"] == 1
    assert breaker.snapshot()["failure_rate"] == 1.0


def test_late_closed_outcomes_do_not_count_after_opening() -> None:
    breaker, clock, _ = make()
    slow = breaker.try_acquire()
    assert slow is not None
    trip(breaker)
    clock.advance(CFG.open_duration_s)
    assert breaker.state is BreakerState.HALF_OPEN
    slow.success()  # started while closed; must not count as a probe success
    probes = [breaker.try_acquire() for _ in range(CFG.half_open_probes)]
    assert all(p is not None for p in probes)
    assert breaker.state is BreakerState.HALF_OPEN


def test_reset_forces_closed_and_clears_window() -> None:
    breaker, _, changes = make()
    trip(breaker)
    breaker.reset()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.snapshot()["calls_in_window"] == 0
    assert changes[-1] == ("payments", BreakerState.CLOSED)
    assert breaker.try_acquire() is not None


def test_exactly_n_probes_under_200_concurrent_threads() -> None:
    breaker, clock, _ = make()
    trip(breaker)
    clock.advance(CFG.open_duration_s)
    start = threading.Barrier(200)
    granted: list[object] = []
    grant_lock = threading.Lock()

    def caller() -> None:
        start.wait()
        permit = breaker.try_acquire()
        if permit is not None:
            with grant_lock:
                granted.append(permit)

    threads = [threading.Thread(target=caller) for _ in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(granted) == CFG.half_open_probes


def test_exactly_n_probes_under_200_concurrent_tasks() -> None:
    breaker, clock, _ = make()
    trip(breaker)
    clock.advance(CFG.open_duration_s)

    async def caller(gate: asyncio.Event) -> bool:
        await gate.wait()
        return breaker.try_acquire() is not None

    async def main() -> list[bool]:
        gate = asyncio.Event()
        tasks = [asyncio.create_task(caller(gate)) for _ in range(200)]
        await asyncio.sleep(0)
        gate.set()
        return await asyncio.gather(*tasks)

    assert sum(asyncio.run(main())) == CFG.half_open_probes


def test_config_is_validated() -> None:
    with pytest.raises(ValueError):
        BreakerConfig(failure_rate_threshold=0)
    with pytest.raises(ValueError):
        BreakerConfig(minimum_calls=0)


def test_state_callback_may_read_the_breaker() -> None:
    # The callback exports a gauge in the services; it must be able to read the breaker
    # (snapshot takes the lock) without deadlocking.
    clock = FakeClock()
    seen: list[str] = []
    breaker = CircuitBreaker(
        "inventory", CFG, clock=clock, wall=Wall(clock),
        on_state_change=lambda _n, _s: seen.append(breaker.snapshot()["state"]),
    )
    trip(breaker)
    clock.advance(CFG.open_duration_s)
    assert breaker.state is BreakerState.HALF_OPEN
    assert seen == ["open", "half_open"]

"""The adaptive limit and a downstream that reports its event loop lag (shop.looplag): a mild
overload (within the arrival-count slack) is held at the limit and cut once the downstream
says it queues; a slow dependency, whose downstream reports an idle loop, is admitted past
the limit as before. Driven with a fake clock and a simulated FIFO downstream."""

from __future__ import annotations

from collections import deque

import pytest
from shop.resilience import AdaptiveLimit, AdaptiveLimitConfig, FakeClock

SERVICE_S = 0.01  # the downstream serves one request per 10 ms: capacity 100/s


def open_loop(limit: AdaptiveLimit, clock: FakeClock, rate: float, seconds: float,
              report: str) -> tuple[list[float], int, int]:
    """Arrivals at `rate` per s for `seconds` into a FIFO downstream of capacity 100/s.
    `report`: what each answer says of the downstream's loop lag ("queue": the work queued
    behind it, "idle": 0.3 ms, "none": nothing, an older service). Returns the admitted
    requests' latencies, the refusals and the most ever in flight."""
    free_at = clock()
    finishing: deque[tuple[float, float]] = deque()  # (done at, admitted at)
    latencies, refused, peak = [], 0, 0

    def complete(until: float) -> None:
        while finishing and finishing[0][0] <= until:
            done, admitted = finishing.popleft()
            if report == "queue":
                limit.note_downstream_lag(max(0.0, free_at - done))
            elif report == "idle":
                limit.note_downstream_lag(0.0003)
            limit.release(done - admitted)
            latencies.append(done - admitted)

    for _ in range(int(rate * seconds)):
        clock.advance(1 / rate)
        complete(clock())
        if limit.try_acquire():
            free_at = max(clock(), free_at) + SERVICE_S
            finishing.append((free_at, clock()))
            peak = max(peak, limit.inflight)
        else:
            refused += 1
    complete(float("inf"))
    return latencies, refused, peak


def learnt(clock: FakeClock) -> AdaptiveLimit:
    """A limit that has seen 100/s served (a closed loop at capacity) and light load."""
    limit = AdaptiveLimit(AdaptiveLimitConfig(initial_limit=20, min_limit=4, max_limit=200,
                                              probe_interval_s=1000), clock=clock)
    for _ in range(300):  # 3 s at capacity, one at a time: the served rate and min RTT
        assert limit.try_acquire()
        clock.advance(SERVICE_S)
        limit.release(SERVICE_S)
    return limit


def p99(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.99)]


def test_a_mild_overload_is_held_at_the_limit_once_the_downstream_says_it_queues() -> None:
    # Without the report (an older orders): 1.1x is within the counts' slack, so requests
    # are admitted past the limit as if a dependency were slow, and the queue grows.
    clock = FakeClock()
    limit = learnt(clock)
    blind, _, blind_peak = open_loop(limit, clock, 110, 10, report="none")
    assert not limit.overloaded() and blind_peak > 60 and p99(blind) > 0.5

    clock = FakeClock()
    limit = learnt(clock)
    latencies, refused, peak = open_loop(limit, clock, 110, 10, report="queue")
    assert limit.downstream_queueing()
    assert peak <= 20 and refused > 0  # never past the initial limit
    assert limit.limit < 20  # latency above tolerance counted as queueing: cut
    settled = latencies[len(latencies) // 5:]
    assert p99(settled) < 0.1 < p99(blind)


def test_a_slow_dependency_behind_an_idle_downstream_is_still_admitted_past_the_limit() -> None:
    """15/s with every answer taking 1.5 s (22 in flight, above the limit of 20) while the
    downstream reports an idle loop: nothing is refused and the limit does not shrink."""
    clock = FakeClock()
    seen: list[int] = []
    limit = AdaptiveLimit(AdaptiveLimitConfig(initial_limit=20, min_limit=4, max_limit=200),
                          clock=clock, rng=lambda: 0.5, on_change=seen.append)
    finishing: deque[float] = deque()
    for seconds, rtt in ((5, 0.02), (30, 1.5)):
        for _ in range(seconds * 15):
            clock.advance(1 / 15)
            while finishing and finishing[0] <= clock():
                finishing.popleft()
                limit.note_downstream_lag(0.0003)
                limit.release(rtt)
            assert limit.try_acquire()
            finishing.append(clock() + rtt)
    assert not limit.downstream_queueing()
    assert seen == [20] and limit.inflight > 20


def test_a_report_of_queueing_holds_for_2_s_whatever_the_reports_after_it_say() -> None:
    clock = FakeClock()
    limit = AdaptiveLimit(clock=clock)
    assert not limit.downstream_queueing()
    limit.note_downstream_lag(0.004)  # below queue_lag_s (5 ms)
    assert not limit.downstream_queueing()
    limit.note_downstream_lag(0.02)
    clock.advance(1.0)
    limit.note_downstream_lag(0.0003)  # a lull at a small limit is not the end of it
    clock.advance(0.9)
    assert limit.downstream_queueing()
    clock.advance(0.2)
    assert not limit.downstream_queueing()
    assert limit.snapshot()["downstream_lag_ms"] == 0.3


def test_queueing_once_reported_lasts_while_the_lag_stays_above_the_clear_level() -> None:
    """Behind a small limit a mild overload keeps orders' lag at 2-5 ms: below the 5 ms that
    starts "queueing", above the 2.5 ms that ends it. Such reports neither start it nor let it
    lapse; only a lag below 2.5 ms for 2 s ends it."""
    clock = FakeClock()
    limit = AdaptiveLimit(clock=clock)
    for _ in range(30):  # 3 s at 3-4 ms, never queueing before: nothing starts
        clock.advance(0.1)
        limit.note_downstream_lag(0.0035)
    assert not limit.downstream_queueing()
    limit.note_downstream_lag(0.02)
    for _ in range(90):  # 9 s at 2.6-4.9 ms after it: still queueing
        clock.advance(0.1)
        limit.note_downstream_lag(0.0026 if int(clock() * 10) % 2 else 0.0049)
        assert limit.downstream_queueing()
    for _ in range(19):  # the overload ends: idle lag
        clock.advance(0.1)
        limit.note_downstream_lag(0.0004)
    assert limit.downstream_queueing()
    clock.advance(0.2)
    limit.note_downstream_lag(0.0004)
    assert not limit.downstream_queueing()


def test_a_clear_level_above_the_queueing_level_or_zero_is_refused() -> None:
    for clear in (0.006, 0.0):
        with pytest.raises(ValueError, match="queue_clear_lag_s"):
            AdaptiveLimitConfig(queue_lag_s=0.005, queue_clear_lag_s=clear)


def test_one_burst_of_lag_does_not_latch_a_slow_dependency_as_queueing() -> None:
    """A slow payments at half capacity kept orders' lag at ~4 ms (between the clear and the
    queueing levels). One 20 ms report (a burst, a GC pause) starts queueing, but without
    another report of 5 ms or more it ends within 12 s, and the slow dependency is then
    admitted past the limit again."""
    clock = FakeClock()
    limit = AdaptiveLimit(AdaptiveLimitConfig(initial_limit=20, min_limit=4, max_limit=200),
                          clock=clock, rng=lambda: 0.5)
    finishing: deque[float] = deque()
    blipped = False
    for step in range(45 * 15):  # 15/s for 45 s, every answer in 1.5 s: 22 in flight
        clock.advance(1 / 15)
        while finishing and finishing[0] <= clock():
            finishing.popleft()
            if step > 8 * 15 and not blipped:
                limit.note_downstream_lag(0.02)
                blipped = True
            else:
                limit.note_downstream_lag(0.004)
            limit.release(1.5)
        if step == 8 * 15 + 15:
            assert limit.downstream_queueing()  # the burst started it
        if limit.try_acquire():
            finishing.append(clock() + 1.5)
    assert blipped and not limit.downstream_queueing()
    assert limit.inflight > 20  # admitted past the limit again

"""The gateway's adaptive concurrency limit, driven with a fake clock and hand-made latencies."""

from __future__ import annotations

import asyncio

import pytest
from shop.resilience import AdaptiveLimit, AdaptiveLimitConfig, FakeClock

WINDOW = AdaptiveLimitConfig().window_s


def run_windows(limit: AdaptiveLimit, clock: FakeClock, rtt_s: float, windows: int,
                busy: bool = True, arrivals: int = 0) -> int:
    """`windows` windows of completions at latency `rtt_s`; `busy` fills every slot first
    (the limit is what bounds concurrency), otherwise only one request runs at a time.
    `arrivals`: requests arriving per window whatever the limit (open loop); those beyond
    the free slots are refused, which is what overload looks like. Returns the refusals."""
    refused = 0
    for _ in range(windows):
        held = limit.limit - limit.inflight if busy else 1
        for _ in range(held):
            assert limit.try_acquire()
        for _ in range(arrivals - held):
            if limit.try_acquire():  # no overload evidence yet: admitted past the limit
                limit.release(None)
            else:
                refused += 1
        for _ in range(held):
            clock.advance(WINDOW / held)
            limit.release(rtt_s)
    return refused


# Far more per window than any limit below admits: open-loop overload.
OVERLOAD = 400


def test_steady_latency_with_every_slot_used_lets_the_limit_grow_to_its_bound() -> None:
    clock = FakeClock()
    seen: list[int] = []
    limit = AdaptiveLimit(AdaptiveLimitConfig(initial_limit=10, max_limit=40,
                                              probe_interval_s=1000), clock=clock,
                          on_change=seen.append)
    run_windows(limit, clock, 0.02, windows=60)
    assert limit.limit == 40
    assert seen[0] == 10 and seen[-1] == 40 and seen == sorted(seen)


def test_queueing_latency_shrinks_the_limit_but_never_below_min() -> None:
    clock = FakeClock()
    limit = AdaptiveLimit(AdaptiveLimitConfig(initial_limit=50, min_limit=6,
                                              probe_interval_s=1000), clock=clock)
    run_windows(limit, clock, 0.02, windows=3)  # learns the no-load latency
    grown = limit.limit
    # 3x more arrives than is served, and latency is 10x: requests queue
    run_windows(limit, clock, 0.2, windows=5, arrivals=OVERLOAD)
    assert limit.limit < grown
    run_windows(limit, clock, 0.2, windows=80, arrivals=OVERLOAD)
    assert limit.limit == 6


def test_windows_that_leave_slots_unused_do_not_move_the_limit() -> None:
    clock = FakeClock()
    limit = AdaptiveLimit(AdaptiveLimitConfig(initial_limit=30, min_samples=1), clock=clock)
    run_windows(limit, clock, 0.02, windows=2, busy=False)
    run_windows(limit, clock, 0.5, windows=10, busy=False)  # slow, but load is 1 of 30
    assert limit.limit == 30


def test_a_quiet_gateway_drifts_back_to_its_initial_limit_after_a_fault() -> None:
    clock = FakeClock()
    limit = AdaptiveLimit(AdaptiveLimitConfig(initial_limit=20, min_limit=4,
                                              probe_interval_s=1000), clock=clock)
    run_windows(limit, clock, 0.02, windows=2)
    run_windows(limit, clock, 1.0, windows=40, arrivals=OVERLOAD)  # overload: to its floor
    assert limit.limit <= 5
    run_windows(limit, clock, 0.02, windows=80, busy=False)  # then little traffic
    assert limit.limit == 20


def test_a_gateway_idle_for_idle_reset_s_starts_again_from_its_initial_limit() -> None:
    clock = FakeClock()
    limit = AdaptiveLimit(AdaptiveLimitConfig(initial_limit=20, min_limit=4,
                                              probe_interval_s=1000), clock=clock)
    run_windows(limit, clock, 0.02, windows=2)
    run_windows(limit, clock, 1.0, windows=40, arrivals=OVERLOAD)
    assert limit.limit <= 5
    clock.advance(limit.config.idle_reset_s - 0.1)
    assert limit.try_acquire() and limit.limit <= 5  # not idle long enough yet
    limit.release(None)
    clock.advance(limit.config.idle_reset_s)
    assert limit.try_acquire() and limit.limit == 20


def test_a_probe_at_min_limit_relearns_the_no_load_latency_of_a_slower_dependency() -> None:
    clock = FakeClock()
    seen: list[int] = []
    limit = AdaptiveLimit(AdaptiveLimitConfig(initial_limit=20, min_limit=4), clock=clock,
                          rng=lambda: 0.5, on_change=seen.append)  # probes every 10 s
    run_windows(limit, clock, 0.02, windows=4)
    assert limit.long_rtt == pytest.approx(0.02)
    # A latency fault under overload (3x arrives): looks like a queue
    run_windows(limit, clock, 0.5, windows=4, arrivals=OVERLOAD)
    shrunk = limit.limit
    assert shrunk < 20 and limit.long_rtt == pytest.approx(0.02)
    while not limit.probing:
        run_windows(limit, clock, 0.5, windows=1, arrivals=OVERLOAD)
    assert limit.limit == 4 and seen[-1] == 4  # the probe runs at min_limit (exported too)
    while limit.probing:
        run_windows(limit, clock, 0.5, windows=1, arrivals=OVERLOAD)
    assert limit.long_rtt == pytest.approx(0.5)  # 0.5 s is this dependency's normal now
    before = limit.limit
    run_windows(limit, clock, 0.5, windows=10, arrivals=OVERLOAD)
    assert limit.limit > before  # and the limit grows again


def test_only_requests_admitted_during_a_probe_measure_it() -> None:
    clock = FakeClock()
    limit = AdaptiveLimit(AdaptiveLimitConfig(initial_limit=20, probe_samples=2), clock=clock,
                          rng=lambda: 0.5)
    run_windows(limit, clock, 0.02, windows=4)
    old = [limit.epoch for _ in range(3) if limit.try_acquire()]
    while not limit.probing:  # probes run under overload only: 50 arrivals per 5 answers
        assert all(limit.try_acquire() for _ in range(5))  # more than min_limit at once
        for _ in range(50):
            if limit.try_acquire():
                limit.release(None)
        for _ in range(5):
            clock.advance(0.002)
            limit.release(0.02)
            if limit.probing:
                break
    for epoch in old:  # admitted before the probe, finishing during it: queued, slow
        limit.release(3.0, epoch)
    assert limit.probing
    for _ in range(2):
        assert limit.try_acquire()
    for _ in range(2):
        limit.release(0.03)
    assert not limit.probing and limit.long_rtt == pytest.approx(0.03)


def test_at_the_limit_without_latency_samples_a_request_is_refused_at_once() -> None:
    async def main() -> None:
        limit = AdaptiveLimit(AdaptiveLimitConfig(initial_limit=4, min_limit=4))
        assert all([await limit.acquire() for _ in range(4)])
        assert await limit.acquire() is False  # no pace known: no queue
        assert limit.inflight == 4
        for _ in range(4):
            limit.release(None)
        assert limit.inflight == 0

    asyncio.run(main())


def test_a_queued_request_gets_the_released_slot_and_no_slot_leaks() -> None:
    async def main() -> None:
        clock = FakeClock()
        limit = AdaptiveLimit(AdaptiveLimitConfig(initial_limit=4, min_limit=4, max_limit=4,
                                                  max_queue_s=10.0), clock=clock)
        # Pace known (4 slots x 10 s / 10 ms), and a served rate the burst below is not
        # overload evidence against (16/s: 9 at once is under 1.25x of 0.5 s + 3 sigma).
        run_windows(limit, clock, 0.01, windows=12)
        assert limit.queue_room() == 4 and not limit.overloaded()
        for _ in range(4):
            assert limit.try_acquire()
        waiters = [asyncio.create_task(limit.acquire()) for _ in range(5)]
        await asyncio.sleep(0)
        assert limit.queued == 4  # the fifth found the queue full
        assert waiters[4].done() and waiters[4].result() is False
        for _ in range(4):
            limit.release(0.01)
        assert [await w for w in waiters[:4]] == [True] * 4
        assert limit.inflight == 4  # handed over, not freed
        for _ in range(4):
            limit.release(0.01)
        assert limit.inflight == 0 and limit.queued == 0

    asyncio.run(main())


def test_under_overload_evidence_nobody_waits_for_a_slot() -> None:
    """A wait only adds its time to a request a slot would take anyway when more arrives
    than is served: with evidence, past the limit is refused at once, queue room or not."""
    async def main() -> None:
        clock = FakeClock()
        limit = AdaptiveLimit(AdaptiveLimitConfig(initial_limit=4, min_limit=4, max_limit=4,
                                                  max_queue_s=10.0), clock=clock)
        run_windows(limit, clock, 0.01, windows=12)
        assert limit.queue_room() == 4
        for _ in range(4):
            assert limit.try_acquire()
        for _ in range(40):  # 40 more at once: 10x what 0.5 s serves
            assert not limit.try_acquire()
        clock.advance(0.01)  # the admission path re-reads the evidence every 10 ms
        assert limit.overloaded() and not limit.may_wait()
        assert await limit.acquire() is False and limit.queued == 0
        assert limit.refuse_now()  # the HTTP protocol's early check says the same
        assert limit.inflight == 4

    asyncio.run(main())


def test_overload_cuts_the_limit_at_once_and_growth_is_smoothed() -> None:
    """Queueing at 3x capacity: the limit comes down in a few windows, not seconds (each
    window's gradient applied unsmoothed); afterwards it grows back a step at a time."""
    clock = FakeClock()
    seen: list[int] = []
    limit = AdaptiveLimit(AdaptiveLimitConfig(initial_limit=20, min_limit=4, max_limit=40,
                                              probe_interval_s=1000), clock=clock,
                          on_change=seen.append)
    run_windows(limit, clock, 0.01, windows=3)  # the no-load latency: 10 ms
    start = limit.limit
    run_windows(limit, clock, 0.1, windows=4, arrivals=OVERLOAD)  # 10x the latency
    assert limit.limit <= start // 2, seen  # 4 windows = 1 s
    low = limit.limit
    clock.advance(3.0)  # the overload is over (out of the 2 s span)
    run_windows(limit, clock, 0.01, windows=8)
    # Unsmoothed, each window would add sqrt(limit) (4 -> 6 -> 8.4 -> ...); smoothed, a
    # fifth of that.
    assert low < limit.limit <= low + 3, seen


def test_the_first_window_of_overload_brings_the_limit_to_what_littles_law_needs() -> None:
    """20 in flight served 80/s at 10x the 10 ms no-load latency: 80/s x 10 ms x 1.5 = 1.2
    in flight would serve the same throughput, + sqrt headroom = 2.3: the rest is queue."""
    clock = FakeClock()
    limit = AdaptiveLimit(AdaptiveLimitConfig(initial_limit=20, min_limit=2, max_limit=40,
                                              probe_interval_s=1000), clock=clock)
    run_windows(limit, clock, 0.01, windows=3)
    assert limit.limit >= 20
    run_windows(limit, clock, 0.1, windows=2, arrivals=OVERLOAD)  # the first one closes
    assert limit.limit == 2


def test_at_the_onset_of_overload_the_limit_drops_before_any_latency_shows() -> None:
    """Served 40/s at 10 ms, then a burst at the limit: the first evidence cuts the limit to
    what 40/s needs (40 x 10 ms x 1.5 = 0.6 in flight, + headroom: min_limit) at once,
    without a window of queueing latency first."""
    clock = FakeClock()
    seen: list[int] = []
    limit = AdaptiveLimit(AdaptiveLimitConfig(initial_limit=20, min_limit=3, max_limit=40,
                                              probe_interval_s=1000), clock=clock,
                          on_change=seen.append)
    for _ in range(120):  # 3 s at 40/s, one at a time, 10 ms each
        assert limit.try_acquire()
        clock.advance(0.01)
        limit.release(0.01)
        clock.advance(0.015)
    assert not limit.overloaded() and limit.limit == 20
    admitted = 0
    for _ in range(200):  # 10x that rate, nothing finishes yet
        clock.advance(0.0025)
        admitted += limit.try_acquire()
    assert limit.overloaded() and limit.limit == 3, seen
    assert admitted < 30  # the limit, plus what 10 ms of evidence let past it


def test_requests_waiting_when_overload_begins_are_refused_then_not_after_max_queue_s() -> None:
    async def main() -> None:
        clock = FakeClock()
        limit = AdaptiveLimit(AdaptiveLimitConfig(initial_limit=4, min_limit=4, max_limit=4,
                                                  max_queue_s=10.0), clock=clock)
        run_windows(limit, clock, 0.01, windows=12)
        clock.advance(2.5)  # quiet: no evidence left, nothing seen for a whole span
        for _ in range(4):
            assert limit.try_acquire()
        waiters = [asyncio.create_task(limit.acquire()) for _ in range(2)]
        await asyncio.sleep(0)
        assert limit.queued == 2
        clock.advance(0.02)
        for _ in range(60):  # a flood: the evidence, read within 10 ms
            assert not limit.try_acquire()
        clock.advance(0.01)
        assert not limit.try_acquire()
        await asyncio.sleep(0)
        assert all(w.done() for w in waiters)  # at once, not after 10 s
        assert [w.result() for w in waiters] == [False, False]
        assert limit.inflight == 4 and limit.queued == 0
        for _ in range(4):
            limit.release(None)
        assert limit.inflight == 0

    asyncio.run(main())


def test_the_queue_holds_what_the_served_rate_drains_in_max_queue_s() -> None:
    """20 slots at a 10 ms no-load latency would drain 2000/s; the stack served 40/s, so
    50 ms of queue is 2 requests, not 20."""
    clock = FakeClock()
    limit = AdaptiveLimit(AdaptiveLimitConfig(initial_limit=20, max_queue_s=0.05,
                                              probe_interval_s=1000), clock=clock)
    for _ in range(120):  # 3 s at 40/s, 10 ms each
        assert limit.try_acquire()
        clock.advance(0.01)
        limit.release(0.01)
        clock.advance(0.015)
    served = limit.served_rate()
    assert served is not None and 35 <= served <= 45
    assert limit.queue_room() == int(served * 0.05) == 2


def test_a_request_queued_past_max_queue_s_is_refused_and_leaves_no_trace() -> None:
    async def main() -> None:
        clock = FakeClock()
        limit = AdaptiveLimit(AdaptiveLimitConfig(initial_limit=4, min_limit=4, max_limit=4,
                                                  max_queue_s=0.02), clock=clock)
        run_windows(limit, clock, 0.001, windows=12)
        for _ in range(4):
            assert limit.try_acquire()
        assert await limit.acquire() is False  # waited 20 ms (real time), no slot came
        assert limit.queued == 0 and limit.inflight == 4
        limit.release(None)
        assert limit.try_acquire()  # the freed slot went to nobody else

    asyncio.run(main())


def test_a_cancelled_waiter_that_was_handed_a_slot_passes_it_on() -> None:
    async def main() -> None:
        clock = FakeClock()
        limit = AdaptiveLimit(AdaptiveLimitConfig(initial_limit=4, min_limit=4, max_limit=4,
                                                  max_queue_s=10.0), clock=clock)
        run_windows(limit, clock, 0.01, windows=12)
        for _ in range(4):
            assert limit.try_acquire()
        first = asyncio.create_task(limit.acquire())
        second = asyncio.create_task(limit.acquire())
        await asyncio.sleep(0)
        limit.release(None)  # handed to `first`...
        first.cancel()  # ...which leaves before it runs
        assert await second is True
        with pytest.raises(asyncio.CancelledError):
            await first
        assert limit.inflight == 4

    asyncio.run(main())


def test_a_slow_dependency_at_the_same_load_neither_shrinks_the_limit_nor_refuses() -> None:
    """Payments answering in 1.5 s instead of 20 ms, at the same arrival rate: latency went
    up 75x, but nothing queued. The limit holds, requests past it are admitted (up to
    max_limit) and no probe runs (it would refuse all but min_limit)."""
    clock = FakeClock()
    seen: list[int] = []
    limit = AdaptiveLimit(AdaptiveLimitConfig(initial_limit=20, min_limit=4, max_limit=200),
                          clock=clock, rng=lambda: 0.5, on_change=seen.append)
    rate = 15.0  # per second, evenly spaced, like a game day's traffic

    def serve(seconds: float, rtt_s: float) -> list[bool]:
        """Open loop at `rate`; each request finishes `rtt_s` after it was admitted."""
        admitted, finishing = [], []
        for _ in range(int(seconds * rate)):
            clock.advance(1 / rate)
            while finishing and finishing[0] <= clock():
                finishing.pop(0)
                limit.release(rtt_s)
            admitted.append(limit.try_acquire())
            if admitted[-1]:
                finishing.append(clock() + rtt_s)
        for _ in finishing:
            limit.release(None)
        return admitted

    assert all(serve(5, 0.02))
    assert limit.long_rtt == pytest.approx(0.02) and not limit.overloaded()
    # 15/s x 1.5 s = 22 in flight, above the limit of 20: admitted all the same
    assert all(serve(30, 1.5))
    assert seen == [20]  # never shrunk, never probed (at 4)
    assert limit.inflight == 0 and not limit.probing


def test_a_closed_loop_of_more_clients_than_needed_is_slower_not_refused() -> None:
    """8 clients that each send again when answered, at 5x the no-load latency (the stack's
    knee is lower): as many arrive as are served, so there is no overload evidence, the
    limit does not shrink and nobody is refused."""
    clock = FakeClock()
    limit = AdaptiveLimit(AdaptiveLimitConfig(initial_limit=20, min_limit=4, max_limit=200,
                                              probe_interval_s=1000), clock=clock)
    for _ in range(40):  # light load first: the no-load latency, 10 ms
        assert limit.try_acquire()
        clock.advance(0.01)
        limit.release(0.01)
        clock.advance(0.04)
    clock.advance(5.0)  # idle, then the closed loop starts all at once
    start = limit.limit
    for _ in range(8):
        assert limit.try_acquire()
    for _ in range(100):  # 5 s: every 50 ms all 8 answer and send again
        clock.advance(0.05)
        for _ in range(8):
            limit.release(0.05)
            assert limit.try_acquire()
    assert not limit.overloaded() and limit.limit >= start


def test_overload_evidence_needs_more_arrivals_than_were_served_normally() -> None:
    clock = FakeClock()
    limit = AdaptiveLimit(AdaptiveLimitConfig(initial_limit=10, probe_interval_s=1000),
                          clock=clock)
    assert limit.overloaded()  # nothing served yet: the limit is all there is
    run_windows(limit, clock, 0.02, windows=12)  # 10 per 0.25 s served at normal latency
    served = limit.served_rate()
    assert served is not None and served >= 40  # at least 10 per 0.25 s
    assert not limit.overloaded()
    refused = run_windows(limit, clock, 0.02, windows=8, arrivals=OVERLOAD)
    assert limit.overloaded() and refused > 0


def test_a_sudden_burst_is_overload_before_the_long_span_would_say_so() -> None:
    """5x the served rate for 0.3 s: the 2 s count alone would let the whole burst in before
    it called it overload; the last 0.5 s does not. Spread over 2 s, the same count is not."""
    for seconds, overload in ((0.3, True), (2.0, False)):
        clock = FakeClock()
        limit = AdaptiveLimit(AdaptiveLimitConfig(initial_limit=10, probe_interval_s=1000),
                              clock=clock)
        run_windows(limit, clock, 0.02, windows=12)
        served = limit.served_rate()
        assert served is not None
        clock.advance(2.5)  # the normal traffic is out of both spans
        burst = round(served * 0.3 * 5)
        for _ in range(burst):
            clock.advance(seconds / burst)
            if limit.try_acquire():
                limit.release(None)
        assert limit.overloaded() is overload, (seconds, burst, served)


def test_a_burst_stops_at_the_limit_before_any_arrival_count_calls_it_overload() -> None:
    """Past the limit, requests are admitted without overload evidence only if those in
    flight came no faster than 2x the served rate: 60 at once are not a slow dependency."""
    clock = FakeClock()
    limit = AdaptiveLimit(AdaptiveLimitConfig(initial_limit=10, probe_interval_s=1000),
                          clock=clock)
    run_windows(limit, clock, 0.02, windows=12)
    clock.advance(2.5)
    assert not limit.overloaded()
    before = limit.limit
    admitted = 0
    for _ in range(60):
        clock.advance(0.05 / 60)
        admitted += limit.try_acquire()
    assert admitted == before
    assert limit.limit == 4  # and the evidence, once in, cut it (min_limit: nothing served)


def test_a_step_to_3x_from_light_load_stays_at_the_limit_until_the_evidence_is_in() -> None:
    """3x the served rate after light load, answered at the served rate (FIFO): past the
    limit only arrivals no faster than 2x the served rate are admitted, and refused ones
    count. Counting admissions alone let this step through at 2x until the arrival counts
    called it overload (here 25 in flight behind a limit of 18; 57 behind 20 on a stack)."""
    clock = FakeClock()
    limit = AdaptiveLimit(AdaptiveLimitConfig(initial_limit=10, probe_interval_s=1000),
                          clock=clock)
    run_windows(limit, clock, 0.02, windows=12)  # 40/s served at 20 ms
    served = limit.served_rate()
    assert served is not None and not limit.overloaded()
    clock.advance(2.5)
    before = limit.limit
    finishing: list[float] = []
    peak = 0
    for _ in range(int(0.5 * 3 * served)):  # 0.5 s at 3x, served at 1x
        clock.advance(1 / (3 * served))
        while finishing and finishing[0] <= clock():
            finishing.pop(0)
            limit.release(None)
        if limit.try_acquire():
            start = max([clock(), *finishing])
            finishing.append(start + 1 / served)
        peak = max(peak, limit.inflight)
    assert peak <= before + 2, (peak, before)


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError):
        AdaptiveLimitConfig(min_limit=10, max_limit=5)
    with pytest.raises(ValueError):
        AdaptiveLimitConfig(tolerance=0.5)
    with pytest.raises(ValueError):
        AdaptiveLimitConfig(load_slack=0.9)


def test_a_probe_while_the_downstream_queues_does_not_learn_the_queue_as_no_load() -> None:
    """The same probe under overload, but orders reports a busy event loop (10 ms): the
    probe's latency is its own queue (on one core, 4 in flight answered in 18 ms against
    6 ms unloaded), so the no-load latency stays and the limit does not grow on it."""
    clock = FakeClock()
    limit = AdaptiveLimit(AdaptiveLimitConfig(initial_limit=20, min_limit=4), clock=clock,
                          rng=lambda: 0.5)
    run_windows(limit, clock, 0.006, windows=4)
    assert limit.long_rtt == pytest.approx(0.006)
    probes = 0
    for _ in range(200):  # 50 s of windows: four or five probes
        limit.note_downstream_lag(0.01)
        run_windows(limit, clock, 0.018, windows=1, arrivals=OVERLOAD)
        probes += limit.probing
    assert probes and limit.long_rtt == pytest.approx(0.006)
    assert limit.limit <= 5
    # Orders idle again and the latency still 18 ms: a slower dependency, learnt.
    clock.advance(2.5)
    for _ in range(200):
        limit.note_downstream_lag(0.0003)
        run_windows(limit, clock, 0.018, windows=1, arrivals=OVERLOAD)
    assert limit.long_rtt == pytest.approx(0.018)

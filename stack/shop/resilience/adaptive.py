"""An adaptive concurrency limit (the gradient family of Netflix's concurrency-limits and
Envoy's adaptive concurrency filter) with a short, bounded admission queue.

A static `max_inflight` cannot track capacity: set high, the excess queues inside orders
(seconds of latency, timeouts, goodput falling); set low, a faster machine or a scaled-out
stack is refused for nothing. This limit follows the latency of the requests it admits:

- the no-load latency (min RTT) is measured, as Envoy does, by a short probe every
  `probe_interval_s` (jittered): the limit drops to `min_limit` until `probe_samples`
  requests admitted during the probe have finished (at most `probe_max_s`), and their median
  is the new min RTT. Measured at low concurrency, it cannot learn that a queue is normal;
  a dependency that really became slower (a latency fault) is learnt at the next probe. A
  window whose peak concurrency stayed at `min_limit` or below is such a measurement by
  itself (no probe under light load). Neither raises the min RTT while the downstream
  reports queueing (below): at `min_limit` on a saturated core that is the queue's latency.
- every window (at least `window_s` and `min_samples` completions) the window's average
  latency (the sample RTT) is compared with it: gradient = clamp(tolerance x min RTT /
  sample RTT, 0.5, 1); new limit = limit x gradient + sqrt(limit) headroom, smoothed,
  within [min_limit, max_limit]. Latency within `tolerance` of the no-load figure lets the
  limit grow; queueing behind the limit shrinks it. A faster window lowers the min RTT.
- a window in which fewer than half the slots were used does not judge the limit (the load,
  not the limit, decided the latency); below `initial_limit` the limit then drifts back up
  to it, so a quiet gateway forgets the small limit an earlier fault left.

Latency alone cannot tell a queue from a slow dependency: payments answering in 3 s raises
every order's latency exactly like a queue would, and a limit that shrinks then turns a
payments incident into gateway refusals (gateway-overload firing first). What tells them
apart is the load: a queue forms because more arrives than the stack serves; a slow
dependency raises latency at the same arrival rate. So the limit only acts on *overload
evidence*: the arrivals of the last `load_span_s`, or of its last quarter (a sudden burst),
refused ones included, exceed `load_slack` x the highest rate served (at any latency) in the
last `served_horizon_s` (plus 3 sigma of counting noise).
Without that evidence a request past the limit is admitted (up to `max_limit`) if the
requests in flight arrived no faster than 2x that served rate (a slow dependency piles them
up at the usual rate, a burst faster: it stops at the limit before the arrival counts catch
up), and the limit neither shrinks nor probes (a probe would refuse for nothing).
Counting cannot see a mild overload (1.0-1.25x what is served: within the slack, and at
under 2x), which piles up the same way: at 1.1x capacity the stack held 64 in flight and
answered in 0.3-0.5 s (p50), up to 2.4 s at the onset. What tells it from a slow dependency
is where the requests wait: a downstream that queues reports its event loop lag on every
answer (shop.looplag: ~100 ms at 1.1x, ~0.3 ms while waiting on a slow payments). While it
reports a lag of at least `queue_lag_s` (`downstream_queueing`, and for 2 s after; once
queueing, reports down to `queue_clear_lag_s` keep it so for up to 10 s after the last one of
`queue_lag_s`: behind a small limit the lag of a mild overload hovers just below it), nothing
is admitted past the limit, nobody waits for a slot, and latency above tolerance is
queueing: the limit is cut as under overload evidence. If overload then meets a dependency
that became slower for good, the probe re-learns the no-load latency once the downstream
has stopped reporting queueing (while it does, a probe may lower the no-load latency but not
raise it: at `min_limit` on a saturated core it measures the queue). Requests
that ended in a downstream failure or fallback (502/503/504, a 202 failed order) give no
latency sample at all (Netflix's "ignore").

With evidence, a decrease is applied at once (growth is smoothed), and never leaves the limit
above what Little's law says the window's throughput needs (completions/s x min RTT x
tolerance, + sqrt headroom). When evidence first appears at the limit (none for a whole
`load_span_s` before) the limit drops to that figure for the last quarter span's throughput
at once, and requests waiting for a slot are refused: no window of queueing first.

Admission: a free slot admits at once. When the limit is reached a request may wait, but
only without overload evidence and only if the queue ahead of it can drain within
`max_queue_s` at the current pace (queue length < limit x max_queue_s / sample RTT), and
never longer than `max_queue_s`; otherwise it is refused at once. So refusals are immediate
and admitted requests queue for a bounded time only. Single event loop; no locks needed.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .clock import Clock

_BUCKET_S = 0.1  # arrivals and served requests are counted in buckets this long
_EVIDENCE_S = 0.01  # the admission path re-reads the overload evidence at most this often
# A downstream that reported queueing counts as queueing for this long after its last such
# report: at a small limit its lag hovers around queue_lag_s, and each gap let a flood of
# requests past the limit (58 in flight behind a limit of 4 at 1.5x capacity).
_LAG_HOLD_S = 2.0
# Reports between queue_clear_lag_s and queue_lag_s keep queueing that started, but only for
# this long after the last report of queue_lag_s or more: a slow payments at half capacity
# reported ~4 ms, so one burst above 5 ms must not latch it for the whole incident.
_LAG_EXTEND_S = 10.0


@dataclass(frozen=True)
class AdaptiveLimitConfig:
    initial_limit: int = 8
    min_limit: int = 4
    max_limit: int = 200
    tolerance: float = 1.5  # latency up to this x the no-load estimate still lets it grow
    smoothing: float = 0.2  # weight of the newly computed limit
    window_s: float = 0.25
    min_samples: int = 8
    max_queue_s: float = 0.05  # the longest an admitted request waits for a slot
    probe_interval_s: float = 10.0  # how often the no-load latency is measured again
    probe_samples: int = 10
    probe_max_s: float = 2.0
    idle_reset_s: float = 5.0  # nothing in flight for this long: back to initial_limit
    load_span_s: float = 2.0  # arrivals are compared with the served rate over this span
    load_slack: float = 1.25  # overload: arrivals above this x the rate served normally
    served_horizon_s: float = 30.0  # "recently served": the best rate of this long
    # The downstream's event loop lag (shop.looplag) from which it is queueing: measured
    # ~0.3-0.4 ms idle or waiting on a slow dependency, 4 ms at half capacity with a slow
    # payments, 20-100 ms at 1.1x capacity.
    queue_lag_s: float = 0.005
    # ...and below which it has stopped (hysteresis): behind a limit of 4 at 1.2x capacity
    # orders reported 2-5 ms, so without it the hold lapsed every few seconds and each
    # lapse let a flood past the limit (13 in flight behind 4, p99 0.26 s in that second).
    queue_clear_lag_s: float = 0.0025

    def __post_init__(self) -> None:
        if not 1 <= self.min_limit <= self.max_limit:
            raise ValueError("need 1 <= min_limit <= max_limit")
        if self.tolerance < 1 or not 0 < self.smoothing <= 1 or self.max_queue_s < 0:
            raise ValueError("need tolerance >= 1, 0 < smoothing <= 1, max_queue_s >= 0")
        if self.load_span_s <= 0 or self.load_slack < 1 or self.served_horizon_s <= 0:
            raise ValueError("need load_span_s > 0, load_slack >= 1, served_horizon_s > 0")
        if not 0 < self.queue_clear_lag_s <= self.queue_lag_s:
            raise ValueError("need 0 < queue_clear_lag_s <= queue_lag_s")


class AdaptiveLimit:
    def __init__(self, config: AdaptiveLimitConfig | None = None, clock: Clock = time.monotonic,
                 on_change: Callable[[int], None] | None = None,
                 rng: Callable[[], float] = random.random) -> None:
        self.config = config or AdaptiveLimitConfig()
        cfg = self.config
        self._clock, self._rng, self._on_change = clock, rng, on_change
        self._limit = float(min(max(cfg.initial_limit, cfg.min_limit), cfg.max_limit))
        self.inflight = 0
        self._last_done = clock()
        # Each waiter's result: True, a slot handed over; False, refused (overload began).
        self._waiters: deque[asyncio.Future[bool]] = deque()
        self.long_rtt: float | None = None  # the no-load (min) RTT
        self.short_rtt: float | None = None  # the last window's average
        self._window_start = clock()
        self._window_sum, self._window_n, self._window_peak = 0.0, 0, 0
        # Probe: `epoch` tags admissions, so only requests admitted during a probe count.
        self.epoch = 0
        self._probing = False
        self._probe_started = 0.0
        self._probe_rtts: list[float] = []
        self._next_probe = float("inf")  # the first window sets the min RTT and schedules it
        # Overload evidence: arrivals and well-served completions over load_span_s, and the
        # best served rate (per s) of the recent windows, with their times.
        # Buckets of [index, arrived, served]; the evidence is re-read at most once a bucket
        # on the admission path (a refusal must cost next to nothing).
        self._buckets: deque[list[int]] = deque()
        self._n_buckets = max(1, math.ceil(cfg.load_span_s / _BUCKET_S))
        self._n_quarter = max(1, self._n_buckets // 4)  # the span's last quarter, in buckets
        self._served_rates: deque[tuple[float, float]] = deque()
        self._evidence = (-1, True)  # (time slice, overloaded) last computed
        self._overloaded_at = -math.inf  # when the admission path last saw evidence
        # When the last max_limit requests were admitted, each with the count of arrivals
        # (refused ones too) at that moment: with answers in roughly FIFO order, the oldest
        # in flight was admitted `inflight` admissions ago.
        self._arrived = 0
        self._admitted_at: deque[tuple[float, int]] = deque(maxlen=cfg.max_limit)
        # The downstream's event loop lag (shop.looplag) as its last answer reported it, and
        # the last time it reported queueing.
        self._downstream_lag, self._queueing_at = 0.0, -math.inf
        self._lagged_at = -math.inf  # the last report of queue_lag_s or more
        self._published = self.limit
        if on_change is not None:
            on_change(self.limit)

    @property
    def limit(self) -> int:
        return self.config.min_limit if self._probing else int(self._limit)

    @property
    def probing(self) -> bool:
        return self._probing

    @property
    def queued(self) -> int:
        return sum(1 for w in self._waiters if not w.done())

    # -- overload evidence --------------------------------------------------------------
    def served_rate(self) -> float | None:
        """The best rate (per s) served in the last served_horizon_s (the
        last one known when none is that recent); None before the first normal window."""
        rates = self._served_rates
        if not rates:
            return None
        horizon = self._clock() - self.config.served_horizon_s
        while len(rates) > 1 and rates[0][0] < horizon:
            rates.popleft()
        return max(rate for _, rate in rates)

    def _count(self, field: int) -> None:
        """One arrival (field 1) or one request served with a latency sample (field 2)."""
        if field == 1:
            self._arrived += 1
        index = int(self._clock() / _BUCKET_S)
        buckets = self._buckets
        if not buckets or buckets[-1][0] != index:
            buckets.append([index, 0, 0])
            while buckets[0][0] <= index - self._n_buckets:
                buckets.popleft()
        buckets[-1][field] += 1

    def _totals(self, buckets: int | None = None) -> tuple[int, int]:
        """(arrived, served) over the last `buckets` buckets (default: load_span_s)."""
        oldest = int(self._clock() / _BUCKET_S) - (buckets or self._n_buckets)
        arrived = served = 0
        for index, a, s in self._buckets:
            if index > oldest:
                arrived += a
                served += s
        return arrived, served

    def overloaded(self) -> bool:
        """More arrives than was recently served (beyond 3 sigma of
        counting noise), over load_span_s or, so a sudden burst is not let in whole before
        the evidence is in, over its last quarter."""
        served = self.served_rate()
        if served is None:
            return True  # nothing known yet: the limit is all there is
        slack = self.config.load_slack
        for buckets in (self._n_buckets, self._n_quarter):
            expected = served * buckets * _BUCKET_S
            if self._totals(buckets)[0] > slack * expected + 3 * math.sqrt(expected) + 2:
                return True
        return False

    def _overloaded_now(self) -> bool:
        """overloaded(), recomputed at most every _EVIDENCE_S (the admission path's view:
        a few microseconds each, and a burst is let past the limit for 10 ms at most)."""
        tick = int(self._clock() / _EVIDENCE_S)
        if self._evidence[0] != tick:
            overloaded = self.overloaded()
            if overloaded:
                now = self._clock()
                if now - self._overloaded_at > self.config.load_span_s:
                    self._cut_at_onset()  # none seen for a whole span: a new overload
                self._overloaded_at = now
            self._evidence = (tick, overloaded)
        return self._evidence[1]

    def _cut_at_onset(self) -> None:
        """Overload evidence has just appeared (at the limit): bring the limit down to the
        concurrency the recent throughput needs, by Little's law (served/s x the no-load
        latency x tolerance, + sqrt headroom), instead of waiting a window for queueing
        latency to show. At 3x capacity that window let 20-30 in flight queue for 0.25 s
        (p50 115 ms against 6 ms unloaded); the gradient grows the limit back if latency
        stays normal."""
        while self._waiters:  # nobody waits under overload (may_wait): refused now, not
            waiter = self._waiters.popleft()  # after max_queue_s
            if not waiter.done():
                waiter.set_result(False)
        if self.long_rtt is None or self._probing:
            return
        cap = max(float(self.config.min_limit), self._needed(self._served_quarter()))
        if cap < self._limit:
            self._limit = cap
            self._publish()

    def _served_quarter(self) -> float:
        """Served per second over the last quarter of load_span_s."""
        return self._totals(self._n_quarter)[1] / (self._n_quarter * _BUCKET_S)

    def _needed(self, rate: float) -> float:
        """The concurrency `rate` per second needs by Little's law at the no-load latency
        (x tolerance), + sqrt headroom: whatever is in flight beyond it is queue."""
        needed = rate * (self.long_rtt or 0.0) * self.config.tolerance
        return needed + math.sqrt(needed)

    def _note_served_rate(self, now: float) -> None:
        """What was served, over load_span_s or its last quarter (whichever is higher: a
        load that has just begun is not yet a 2 s average, and its arrivals are compared
        over the quarter too)."""
        rate = max(self._totals()[1] / self.config.load_span_s, self._served_quarter())
        rates = self._served_rates
        while rates and rates[-1][1] <= rate:
            rates.pop()  # a newer, higher rate makes the older lower ones irrelevant
        rates.append((now, rate))

    def note_downstream_lag(self, lag_s: float) -> None:
        """The event loop lag an answer of the downstream reported (shop.looplag)."""
        self._downstream_lag = lag_s
        if lag_s >= self.config.queue_lag_s:
            self._queueing_at = self._lagged_at = self._clock()
        elif lag_s >= self.config.queue_clear_lag_s:  # keeps queueing on, within its bounds
            now = self._clock()
            if now - self._queueing_at < _LAG_HOLD_S and now - self._lagged_at < _LAG_EXTEND_S:
                self._queueing_at = now

    def downstream_queueing(self) -> bool:
        """Is the downstream queueing: did it report a loop lag of at least `queue_lag_s` in
        the last 2 s (once it is, of at least `queue_clear_lag_s`, for up to 10 s after the
        last `queue_lag_s`)? Requests then wait for its CPU, not for a dependency of it."""
        return self._clock() - self._queueing_at < _LAG_HOLD_S

    # -- admission ----------------------------------------------------------------------
    def try_acquire(self) -> bool:
        """One arrival: take a slot if one is free right now (nobody queued ahead), or, with
        no overload evidence, any slot up to max_limit. False: queue or refuse it."""
        self._count(1)
        return self._try_take()

    def _try_take(self) -> bool:
        if self._can_take():
            self._take()
            return True
        return False

    def _can_take(self) -> bool:
        if self.inflight == 0 and self._limit < self.config.initial_limit:
            self._reset_if_idle()
        if self.inflight < self.limit and not self._waiters:
            return True
        # At the limit the evidence is always read (its onset cuts the limit at once).
        # The same load as was served before: whatever made requests slower (a
        # slow dependency), refusing would not help. max_limit still bounds it.
        return not self._overloaded_now() and self.inflight < self.config.max_limit \
            and self._inflight_is_served_load()

    def refuse_now(self) -> bool:
        """Would an arrival be refused at once (no slot, no room to wait)? If so it is
        counted as a refused arrival and True returned: the caller answers 429 without
        calling acquire(). False changes nothing: acquire() as usual. The HTTP server asks
        this before it builds a request for the app, so a refusal costs the parse alone."""
        if self._can_take() or self.may_wait():
            return False
        self._count(1)
        return True

    def _inflight_is_served_load(self) -> bool:
        """Did requests arrive, since the oldest one in flight was admitted, no faster than
        2x the rate served normally? A slow dependency piles up requests at the usual rate
        (in flight = rate x their age); a burst arrives faster, and is stopped at the limit
        at once instead of after the arrival counts over load_span_s have caught up with it.
        Every arrival counts, refused ones too: counting only admissions let a 3x step from
        light load through at 2x the served rate (57 in flight behind a limit of 20, 400 ms)
        until the evidence was in."""
        if self.downstream_queueing():  # first: no served-rate scan for a refusal
            return False
        served = self.served_rate()
        admitted = self._admitted_at
        if served is None or not admitted:
            return False
        since, arrived = admitted[-min(self.inflight, len(admitted))] if self.inflight \
            else admitted[-1]
        return self._arrived - arrived <= 2 * served * (self._clock() - since) + 2

    def queue_room(self) -> int:
        """How many may wait: as many as the current pace serves within max_queue_s. The
        pace is limit / RTT, but never more than the best rate served lately: measured at
        light load, limit / RTT took 20 slots for 20 parallel servers (1800/s where the
        stack served 180/s) and let 20 wait at the onset of an overload."""
        cfg = self.config
        rtt = self.short_rtt or self.long_rtt
        if cfg.max_queue_s <= 0 or not rtt or self._probing:
            return 0  # no pace known yet (or measuring): nothing to size a queue by
        pace = self.limit / rtt
        served = self.served_rate()
        if served is not None:
            pace = min(pace, served)
        return min(self.limit, int(pace * cfg.max_queue_s))

    async def acquire(self) -> bool:
        """One arrival: a slot now, or after a bounded wait; False means refuse (429)."""
        return self.try_acquire() or await self.wait_for_slot()

    def may_wait(self) -> bool:
        """After try_acquire() said no: is there room to wait? No: refuse at once. Waiting
        is for a burst at a load the stack serves; under overload evidence, or behind a
        downstream that queues, a wait only adds its time to the latency of a request that
        a slot would have taken anyway."""
        # The evidence and the downstream's lag first: both are cheap, and under overload
        # (every refusal) they spare queue_room() its served-rate scan.
        return not self._overloaded_now() and not self.downstream_queueing() \
            and len(self._waiters) < self.queue_room()

    async def wait_for_slot(self) -> bool:
        """After try_acquire() said no: wait a bounded time for a slot; False: refuse."""
        if self._try_take():
            return True
        if not self.may_wait():
            return False
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)

        def granted() -> bool:
            return waiter.done() and not waiter.cancelled() and waiter.result()

        try:
            async with asyncio.timeout(self.config.max_queue_s):
                # True: the releaser handed its slot over (inflight already counted)
                return await waiter
        except TimeoutError:
            return granted()  # handed over just as time ran out: keep it
        except BaseException:
            if granted():
                self.release(None)  # we were given a slot but are leaving: pass it on
            raise
        finally:
            if not waiter.done():
                waiter.cancel()
            try:
                self._waiters.remove(waiter)
            except ValueError:
                pass

    def _reset_if_idle(self) -> None:
        """A gateway that had nothing in flight for idle_reset_s has no load to judge its
        limit by: it starts again from initial_limit instead of keeping the small limit a
        past fault or overload left (the next burst would be refused for nothing)."""
        now = self._clock()
        if now - self._last_done >= self.config.idle_reset_s:
            self._limit = float(min(self.config.initial_limit, self.config.max_limit))
            # The open window's samples and peak belong to that past load, too.
            self._window_start, self._window_sum, self._window_n = now, 0.0, 0
            self._window_peak = 0
            if self._probing:
                self._probing = False
                self.epoch += 1
                self._schedule_probe(now)
            self._publish()

    def _take(self) -> None:
        self.inflight += 1
        self._admitted_at.append((self._clock(), self._arrived))
        if self.inflight > self._window_peak:
            self._window_peak = self.inflight

    def release(self, rtt_s: float | None, epoch: int | None = None) -> None:
        """Give the slot back. `rtt_s`: the admitted request's latency (None: no sample);
        `epoch`: `self.epoch` when it was admitted."""
        if rtt_s is not None:
            self._count(2)
            self._sample(rtt_s, self.epoch if epoch is None else epoch)
        if self.inflight == 1:
            self._last_done = self._clock()
        while self._waiters and self.inflight <= self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(True)  # hand the slot over: inflight stays the same
                return
        self.inflight -= 1

    # -- the limit ----------------------------------------------------------------------
    def _sample(self, rtt_s: float, epoch: int) -> None:
        now = self._clock()
        if self._probing:
            if epoch == self.epoch:
                self._probe_rtts.append(rtt_s)
            elapsed = now - self._probe_started
            if len(self._probe_rtts) >= self.config.probe_samples \
                    or elapsed >= self.config.probe_max_s:
                self._end_probe(now)
            return
        self._window_sum += rtt_s
        self._window_n += 1
        elapsed = now - self._window_start
        if (elapsed >= self.config.window_s and self._window_n >= self.config.min_samples) \
                or elapsed >= 8 * self.config.window_s:
            short, peak = self._window_sum / self._window_n, self._window_peak
            limit_before = self.limit
            self._update(short, peak, self._window_n / max(elapsed, 1e-9))
            self._window_start, self._window_sum, self._window_n = now, 0.0, 0
            self._window_peak = self.inflight
            if peak <= self.config.min_limit and peak < limit_before:
                # Light load (not held down by the limit) measures the no-load latency by
                # itself: no probe needed.
                self._relearn(short)
                self._schedule_probe(now)
            elif now >= self._next_probe:
                if self.overloaded():
                    self._start_probe(now)
                else:  # no overload: a probe would only refuse requests for nothing
                    self._schedule_probe(now)

    def _start_probe(self, now: float) -> None:
        self._probing, self._probe_started, self._probe_rtts = True, now, []
        self.epoch += 1
        self._publish()

    def _end_probe(self, now: float) -> None:
        if self._probe_rtts:
            self._probe_rtts.sort()
            self._relearn(self._probe_rtts[len(self._probe_rtts) // 2])
        self._probing = False
        self.epoch += 1
        self._schedule_probe(now)
        self._window_start, self._window_sum, self._window_n = now, 0.0, 0
        self._window_peak = self.inflight
        self._publish()

    def _relearn(self, rtt_s: float) -> None:
        """A probe's (or a light window's) latency as the new no-load latency, unless it is
        higher while the downstream is queueing: on one core, 4 in flight behind a limit of
        4 at 1.5x capacity answered in 18 ms against 6 ms unloaded; learning that let the
        limit double and p99 rise to 3x. A slower dependency (an idle downstream) is learnt."""
        if self.long_rtt is None or rtt_s <= self.long_rtt or not self.downstream_queueing():
            self.long_rtt = rtt_s

    def _schedule_probe(self, now: float) -> None:
        jitter = 0.8 + 0.4 * self._rng()  # probes of several replicas do not line up
        self._next_probe = now + self.config.probe_interval_s * jitter

    def _update(self, short: float, peak: int, rate: float) -> None:
        """A window's average latency `short`, its peak concurrency and its completions/s."""
        cfg = self.config
        self.short_rtt = short
        if self.long_rtt is None or short < self.long_rtt:
            if self.long_rtt is None:
                self._schedule_probe(self._clock())
            self.long_rtt = short
        # Served at any latency: a closed loop of more clients than the stack needs is
        # slower, not overloaded (as many arrive as are served). Only counting windows of
        # normal latency made its own rate look like overload, and the limit refused it.
        self._note_served_rate(self._clock())
        if short > cfg.tolerance * self.long_rtt and not self.overloaded() \
                and not self.downstream_queueing():
            # Slower at the same load: a dependency, not a queue. Hold the limit (and the
            # no-load latency: at the same load a shrinking capacity looks alike, and taking
            # its queue for the new normal would let the limit grow into it).
            return
        if peak < self._limit / 2:
            # App-limited: the latency says nothing about this limit. Below the initial
            # limit it drifts back up, so a quiet gateway does not keep the small limit a
            # past fault or overload left (the next burst would be refused for nothing).
            if self._limit < cfg.initial_limit:
                self._limit = min(float(cfg.initial_limit), self._limit + math.sqrt(self._limit))
                self._publish()
            return
        gradient = max(0.5, min(1.0, cfg.tolerance * self.long_rtt / short))
        target = self._limit * gradient + math.sqrt(self._limit)
        if target < self._limit:
            # Only reached on overload evidence or a queueing downstream (see above): cut at
            # once. Smoothed, a limit of 20 took ~6 s to come down at 3x capacity, and every
            # request admitted meanwhile queued behind it (p50 160 ms against 11 ms
            # unloaded). And no higher than this window's throughput needs (Little's law),
            # so one window reaches it.
            new = min(target, self._needed(rate))
        else:  # growth is smoothed: slow up
            new = (1 - cfg.smoothing) * self._limit + cfg.smoothing * target
        self._limit = min(float(cfg.max_limit), max(float(cfg.min_limit), new))
        self._publish()

    def _publish(self) -> None:
        if self.limit != self._published:
            self._published = self.limit
            if self._on_change is not None:
                self._on_change(self.limit)

    def snapshot(self) -> dict:
        def ms(value: float | None) -> float | None:
            return None if value is None else round(value * 1e3, 2)

        return {"limit": self.limit, "inflight": self.inflight, "queued": self.queued,
                "probing": self._probing, "sample_rtt_ms": ms(self.short_rtt),
                "min_rtt_ms": ms(self.long_rtt), "min_limit": self.config.min_limit,
                "max_limit": self.config.max_limit, "overloaded": self.overloaded(),
                "served_rate": self.served_rate(),
                "downstream_lag_ms": ms(self._downstream_lag),
                "downstream_queueing": self.downstream_queueing()}

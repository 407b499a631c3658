"""The study's metrics, computed from recorded samples (pure functions: no clock, no I/O).

A `Request` is one logical request of the measured client (with the aggressive client of
retry_storm, its re-sends are attempts of the same request): when it was sent (seconds since
the cell started), how long until its final answer, and what that answer was.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from chaosctl.stats import percentile

OK, FAILED, SHED, ERROR = "ok", "failed", "shed", "error"
RECOVERED_SHARE = 0.95


def outcome(status: int | None, body: object) -> str:
    """ok: 201 with a completed order; shed: 429; error: 5xx or no answer; failed: the rest
    (202 an order recorded but failed, 409 in progress, other 4xx)."""
    if status is None or status >= 500:
        return ERROR
    if status == 429:
        return SHED
    if status in (200, 201) and isinstance(body, dict) and body.get("status") == "completed":
        return OK
    return FAILED


@dataclass(frozen=True)
class Request:
    t_sent: float
    latency_ms: float
    outcome: str
    attempts: int = 1


@dataclass
class Counters:
    """Cumulative counters read from the services' /metrics at one moment."""

    orders: float = 0.0  # orders handled by the orders service (orders_total)
    payment_calls: float = 0.0  # orders -> payments requests sent (downstream_requests_total)
    payment_retries: float = 0.0  # of which retries (retry_requests_total{downstream=payments})
    bulkhead_rejections: float = 0.0
    load_shed: float = 0.0
    # orders -> payments call duration histogram: upper bound (s) -> cumulative count
    payment_buckets: dict[float, float] = field(default_factory=dict)
    # False when orders' /metrics did not answer: its zeros would make a window's deltas
    # wrong (a whole run's calls, or negative), so the metrics from it are None instead.
    complete: bool = True


def _pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 2) if whole else None


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def request_metrics(requests: Iterable[Request], t0: float, t1: float) -> dict[str, object]:
    """Success, latency percentiles, shed and 5xx rates of the requests sent in [t0, t1)."""
    chosen = [r for r in requests if t0 <= r.t_sent < t1]
    admitted = [r.latency_ms for r in chosen if r.outcome != SHED]
    n = len(chosen)
    return {
        "requests": n,
        "success_pct": _pct(sum(r.outcome == OK for r in chosen), n),
        "p50_ms": _ms(percentile(admitted, 50)),
        "p95_ms": _ms(percentile(admitted, 95)),
        "p99_ms": _ms(percentile(admitted, 99)),
        "shed_pct": _pct(sum(r.outcome == SHED for r in chosen), n),
        "error_5xx_pct": _pct(sum(r.outcome == ERROR for r in chosen), n),
    }


def mttr(requests: Sequence[Request], fault_end: float, observed_until: float,
         hold_s: float, width: float = 1.0) -> float | None:
    """Seconds from `fault_end` to the start of the first `width` bucket (by send time) from
    which every bucket up to `hold_s` later has success >= 95 %; None if that never happened
    before `observed_until`. A bucket without requests breaks the run (nothing was served)."""
    n = max(0, math.floor((observed_until - fault_end) / width))
    ok = [0] * n
    sent = [0] * n
    for r in requests:
        if r.t_sent < fault_end:
            continue
        i = int((r.t_sent - fault_end) // width)
        if i < n:
            sent[i] += 1
            ok[i] += r.outcome == OK
    need = max(1, math.ceil(hold_s / width))
    run_start: int | None = None
    for i in range(n):
        if sent[i] and ok[i] / sent[i] >= RECOVERED_SHARE:
            run_start = i if run_start is None else run_start
            if i - run_start + 1 >= need:
                return round(run_start * width, 2)
        else:
            run_start = None
    return None


def breaker_open_pct(by_second: Mapping[int, int], t0: float, t1: float) -> float | None:
    """Share of the 1 s samples in [t0, t1) with any breaker not closed (-1: unreadable,
    left out); None when no sample could be read."""
    values = [v for s, v in by_second.items() if t0 <= s < t1 and v >= 0]
    return _pct(sum(v > 0 for v in values), len(values))


def histogram_quantile(before: Mapping[float, float], after: Mapping[float, float],
                       q: float) -> float | None:
    """The q-quantile (0..1) of what a cumulative histogram counted between two readings,
    as the upper bound of the bucket it falls in (seconds); None without observations.
    Observations beyond the last finite bucket give that bucket's bound."""
    bounds = sorted(after)
    deltas = [(b, after[b] - before.get(b, 0.0)) for b in bounds]
    total = next((d for b, d in deltas if math.isinf(b)), deltas[-1][1] if deltas else 0.0)
    if total <= 0:
        return None
    finite = [b for b in bounds if not math.isinf(b)]
    for bound, count in deltas:
        if count >= q * total:
            return bound if not math.isinf(bound) else (finite[-1] if finite else None)
    return finite[-1] if finite else None


def counter_metrics(before: Counters, after: Counters) -> dict[str, object]:
    """Retry amplification is payments calls sent per logical payments call that went out
    (sent minus retries sent): both counted when a call goes out, so a window's edges cut them
    alike (orders are counted when they finish, seconds later under a slow payment). Retries
    the stack decided on but never sent (breaker open, bulkhead full, deadline spent) are in
    retry_attempts_total only; subtracting those inflated the ratio (25x under a slow
    payment with breakers)."""
    if not (before.complete and after.complete):
        return {"raf": None, "bulkhead_rejection_pct": None, "payment_p95_ms": None}
    orders = after.orders - before.orders
    calls = after.payment_calls - before.payment_calls
    logical = calls - (after.payment_retries - before.payment_retries)
    rejected = after.bulkhead_rejections - before.bulkhead_rejections
    p95 = histogram_quantile(before.payment_buckets, after.payment_buckets, 0.95)
    return {
        "raf": round(calls / logical, 2) if logical > 0 else None,
        "bulkhead_rejection_pct": round(100.0 * rejected / orders, 2) if orders > 0 else None,
        "payment_p95_ms": None if p95 is None else round(p95 * 1000.0, 1),
    }


def duplicate_pct(orders: int, keys: int) -> float | None:
    """Orders beyond the first per idempotency key, per key, in %."""
    return round(100.0 * (orders - keys) / keys, 2) if keys else None


def median_of(runs: Sequence[Mapping[str, object]]) -> dict[str, object]:
    """Field-wise median over repeated runs (None values left out; all None -> None).
    `recovered` is true only when every run recovered."""
    if not runs:
        return {}
    out: dict[str, object] = {}
    for key in runs[0]:
        values = [r[key] for r in runs if r.get(key) is not None]
        if key == "recovered":
            out[key] = None if not values else all(bool(v) for v in values)
        elif key == "requests":
            out[key] = int(sum(int(v) for v in values))  # type: ignore[call-overload]
        elif not values:
            out[key] = None
        else:
            out[key] = round(statistics.median(float(v) for v in values), 2)  # type: ignore[arg-type]
    return out


def difference(ours: float | None, paper: float | None) -> float | None:
    return None if ours is None or paper is None else round(ours - paper, 2)

"""Turn per-request records into one-second samples and before/during/after statistics."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from chaosctl.gameday.model import PhaseStats, Sample
from chaosctl.stats import percentile

OK, FAILED, SHED, CONFLICT = "ok", "failed", "shed", "conflict"
# An idempotent replay answers with the ORIGINAL outcome, which says nothing about the stack
# now: it is kept apart from success like shed and conflict.
REPLAY = "replay"


@dataclass(frozen=True)
class RequestRecord:
    t: float  # seconds since the run started, when the request completed
    latency_ms: float
    outcome: str  # ok | failed | shed | conflict | replay


def phase_stats(records: Iterable[RequestRecord], t0: float, t1: float) -> PhaseStats:
    """Success among admitted requests (shed ones are counted apart) and admitted latency."""
    chosen = [r for r in records if t0 <= r.t < t1]
    ok = sum(r.outcome == OK for r in chosen)
    failed = sum(r.outcome == FAILED for r in chosen)
    admitted = [r.latency_ms for r in chosen if r.outcome in (OK, FAILED)]
    return PhaseStats(
        requests=len(chosen),
        success_rate=ok / (ok + failed) if ok + failed else None,
        p95_ms=percentile(admitted, 95),
        p99_ms=percentile(admitted, 99),
    )


def samples(records: Sequence[RequestRecord], end: float,
            breaker_open: dict[int, int] | None = None, width: float = 1.0) -> list[Sample]:
    """One Sample per `width` seconds from 0 to `end` (t is the end of each bucket)."""
    n = max(1, math.ceil(end / width))
    buckets: list[list[RequestRecord]] = [[] for _ in range(n)]
    for r in records:
        index = min(n - 1, max(0, int(r.t // width)))
        buckets[index].append(r)
    out = []
    for i, bucket in enumerate(buckets):
        admitted = [r.latency_ms for r in bucket if r.outcome in (OK, FAILED)]
        out.append(Sample(
            t=round((i + 1) * width, 3),
            sent=len(bucket),
            ok=sum(r.outcome == OK for r in bucket),
            failed=sum(r.outcome == FAILED for r in bucket),
            shed=sum(r.outcome == SHED for r in bucket),
            p50_ms=percentile(admitted, 50),
            p95_ms=percentile(admitted, 95),
            p99_ms=percentile(admitted, 99),
            breaker_open=(breaker_open or {}).get(i, -1),
        ))
    return out


def success_rate(
    records: Iterable[RequestRecord], t0: float, t1: float
) -> tuple[float | None, int]:
    """(success among admitted, admitted count) for completions in [t0, t1)."""
    ok = failed = 0
    for r in records:
        if t0 <= r.t < t1:
            ok += r.outcome == OK
            failed += r.outcome == FAILED
    return (ok / (ok + failed) if ok + failed else None), ok + failed

"""A time-sliding window of counters, shared by the breaker and the retry budget."""

from __future__ import annotations

import math
from collections import deque

from .clock import Clock


class SlidingCounts:
    """Counts of several named events over the last `window_s` seconds, in buckets.

    Bucketing keeps memory bounded under any call rate; the window slides one bucket at a
    time (1 s, or window_s/10 for short windows), which is precise enough for rates.
    Not thread-safe by itself: owners guard it with their own lock.
    """

    def __init__(self, window_s: float, fields: tuple[str, ...], clock: Clock) -> None:
        if window_s <= 0:
            raise ValueError("window_s must be > 0")
        self._fields = fields
        self._clock = clock
        self._bucket_s = min(1.0, window_s / 10)
        self._n_buckets = max(1, math.ceil(window_s / self._bucket_s))
        self._buckets: deque[tuple[int, list[int]]] = deque()

    def _prune(self, index: int) -> None:
        oldest_kept = index - self._n_buckets + 1
        while self._buckets and self._buckets[0][0] < oldest_kept:
            self._buckets.popleft()

    def add(self, field: str, n: int = 1) -> None:
        index = math.floor(self._clock() / self._bucket_s)
        self._prune(index)
        if not self._buckets or self._buckets[-1][0] != index:
            self._buckets.append((index, [0] * len(self._fields)))
        self._buckets[-1][1][self._fields.index(field)] += n

    def totals(self) -> dict[str, int]:
        self._prune(math.floor(self._clock() / self._bucket_s))
        sums = [0] * len(self._fields)
        for _, counts in self._buckets:
            for i, c in enumerate(counts):
                sums[i] += c
        return dict(zip(self._fields, sums, strict=True))

    def clear(self) -> None:
        self._buckets.clear()

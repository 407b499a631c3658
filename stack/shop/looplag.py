"""How long this service's event loop takes to reach a callback that is due: the time every
piece of its work waits before it runs.

A service that is offered more than its CPU can do queues inside its own event loop: orders
at 1.1x the stack's capacity had a mean loop lag of ~100 ms against ~0.4 ms at a quarter of
it, while a slow dependency (payments answering in 1.5 s) left it at ~0.3 ms, with every
request just waiting. The gateway's latency looks the same in both cases; this is what tells
them apart (issue 13). Each service but the gateway reports it on every answer
(`x-shop-loop-lag-ms`, the mean of the last window) and as `event_loop_lag_seconds`;
the gateway's adaptive limit reads it from orders' answers (shop.resilience.adaptive).

A timer every INTERVAL_S while requests come in (~40 wake-ups a second, about 0.5 % of a
core for a service that is otherwise idle); it stops after a window without a request, so an
idle service does not wake at all, and the next request starts it again.
"""

from __future__ import annotations

import asyncio

from shop import metrics

HEADER = "x-shop-loop-lag-ms"
INTERVAL_S = 0.025
WINDOW_S = 0.25


class LoopLag:
    """The mean lag of this process's event loop over the last WINDOW_S, measured while
    requests come in (`start()` on each, from the loop that serves them)."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.value_s = 0.0
        self.header = (HEADER.encode(), b"0.0")
        self._task: asyncio.Task[None] | None = None
        self._requested = False  # a request came in during the current window

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        """A request came in: measure (again, after an idle spell)."""
        self._requested = True
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        gauge = metrics.event_loop_lag_seconds.labels(self.service)
        total, count, window_start = 0.0, 0, loop.time()
        while True:
            due = loop.time() + INTERVAL_S
            await asyncio.sleep(INTERVAL_S)
            now = loop.time()
            total += max(0.0, now - due)
            count += 1
            if now - window_start >= WINDOW_S:
                self.value_s = total / count
                self.header = (self.header[0], b"%.1f" % (self.value_s * 1e3))
                gauge.set(self.value_s)
                total, count, window_start = 0.0, 0, now
                if not self._requested:  # a whole window without a request: idle
                    self._task = None
                    return
                self._requested = False


def parse_ms(value: str | None) -> float | None:
    """The header's value in seconds; None when absent or not a number (an older service)."""
    if not value:
        return None
    try:
        lag = float(value) / 1e3
    except ValueError:
        return None
    return lag if 0 <= lag < 3600 else None

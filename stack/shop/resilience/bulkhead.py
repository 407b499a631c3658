"""Bulkhead: cap concurrent calls to one downstream so a slow one cannot take every worker.

A waiter that gets no slot within `max_wait_s` fails fast with BulkheadFullError instead of
queueing behind a stuck dependency. Slots are handed directly from the releaser to the
next waiter, and every way out of the wait (timeout, cancellation, a slot handed over just
as the waiter was cancelled) is accounted for, so slots never leak. Use from one event loop.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from .errors import BulkheadFullError


class Bulkhead:
    def __init__(self, name: str, max_concurrent: int = 20, max_wait_s: float = 0.05) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be >= 1")
        self.name = name
        self.max_concurrent = max_concurrent
        self.max_wait_s = max_wait_s
        self._in_use = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._rejections = 0

    @property
    def in_use(self) -> int:
        return self._in_use

    @property
    def waiting(self) -> int:
        return sum(1 for w in self._waiters if not w.done())

    def slot(self) -> AbstractAsyncContextManager[None]:
        """`async with bulkhead.slot():` holds one slot for the body; raises BulkheadFullError."""
        return self._slot()

    @asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        await self._acquire()
        try:
            yield
        finally:
            self._release()

    def snapshot(self) -> dict:
        return {
            "name": self.name,
            "max_concurrent": self.max_concurrent,
            "in_use": self._in_use,
            "waiting": self.waiting,
            "rejections_total": self._rejections,
        }

    async def _acquire(self) -> None:
        if self._in_use < self.max_concurrent and not self._waiters:
            self._in_use += 1
            return
        if self.max_wait_s <= 0:
            self._rejections += 1
            raise BulkheadFullError(self.name)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self.max_wait_s):
                await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                # The slot was handed to us, but we are leaving (timeout or cancel raced
                # with the hand-off): pass it on rather than lose it.
                self._release()
            else:
                waiter.cancel()
                self._remove(waiter)
            if isinstance(exc, TimeoutError):
                self._rejections += 1
                raise BulkheadFullError(self.name) from None
            raise
        finally:
            self._remove(waiter)

    def _remove(self, waiter: asyncio.Future[None]) -> None:
        try:
            self._waiters.remove(waiter)
        except ValueError:
            pass

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # hand the slot over: in_use stays the same
                return
        self._in_use -= 1

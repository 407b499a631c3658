"""Bulkhead: bounded concurrency, fast rejection, and no slot leaks on cancellation."""

from __future__ import annotations

import asyncio
import random

import pytest
from shop.resilience import Bulkhead, BulkheadFullError


async def hold(bulkhead: Bulkhead, release: asyncio.Event, entered: asyncio.Event | None = None):
    async with bulkhead.slot():
        if entered is not None:
            entered.set()
        await release.wait()


async def fill(bulkhead: Bulkhead, release: asyncio.Event) -> list[asyncio.Task]:
    holders = [asyncio.create_task(hold(bulkhead, release)) for _ in range(bulkhead.max_concurrent)]
    while bulkhead.in_use < bulkhead.max_concurrent:
        await asyncio.sleep(0)
    return holders


def test_rejects_after_max_wait_and_recovers() -> None:
    async def main() -> None:
        bulkhead = Bulkhead("payments", max_concurrent=2, max_wait_s=0.005)
        release = asyncio.Event()
        holders = await fill(bulkhead, release)
        with pytest.raises(BulkheadFullError) as info:
            async with bulkhead.slot():
                pytest.fail("entered a full bulkhead")
        assert info.value.downstream == "payments"
        assert bulkhead.in_use == 2 and bulkhead.waiting == 0
        assert bulkhead.snapshot()["rejections_total"] == 1
        release.set()
        await asyncio.gather(*holders)
        assert bulkhead.in_use == 0
        async with bulkhead.slot():
            assert bulkhead.in_use == 1
        assert bulkhead.in_use == 0

    asyncio.run(main())


def test_zero_wait_rejects_immediately() -> None:
    async def main() -> None:
        bulkhead = Bulkhead("inventory", max_concurrent=1, max_wait_s=0)
        release = asyncio.Event()
        holders = await fill(bulkhead, release)
        with pytest.raises(BulkheadFullError):
            async with bulkhead.slot():
                pass
        release.set()
        await asyncio.gather(*holders)
        assert bulkhead.in_use == 0

    asyncio.run(main())


def test_waiter_gets_slot_freed_within_wait() -> None:
    async def main() -> None:
        bulkhead = Bulkhead("orders", max_concurrent=1, max_wait_s=30)
        release = asyncio.Event()
        holders = await fill(bulkhead, release)
        entered = asyncio.Event()
        waiter = asyncio.create_task(hold(bulkhead, asyncio.Event(), entered))
        while bulkhead.waiting == 0:
            await asyncio.sleep(0)
        release.set()
        await asyncio.wait_for(entered.wait(), 10)
        assert bulkhead.in_use == 1  # handed over, not freed and re-taken
        waiter.cancel()
        await asyncio.gather(*holders, waiter, return_exceptions=True)
        assert bulkhead.in_use == 0

    asyncio.run(main())


def test_cancelled_waiters_never_leak_slots() -> None:
    async def main() -> None:
        bulkhead = Bulkhead("payments", max_concurrent=3, max_wait_s=30)
        release = asyncio.Event()
        holders = await fill(bulkhead, release)
        waiters = [asyncio.create_task(hold(bulkhead, asyncio.Event())) for _ in range(50)]
        while bulkhead.waiting < 50:
            await asyncio.sleep(0)
        for w in waiters:
            w.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
        assert bulkhead.waiting == 0 and bulkhead.in_use == 3
        release.set()
        await asyncio.gather(*holders)
        assert bulkhead.in_use == 0
        # full capacity is available again
        again = asyncio.Event()
        more = await fill(bulkhead, again)
        again.set()
        await asyncio.gather(*more)
        assert bulkhead.in_use == 0

    asyncio.run(main())


def test_cancel_racing_with_hand_off_does_not_leak() -> None:
    async def main() -> None:
        bulkhead = Bulkhead("payments", max_concurrent=1, max_wait_s=30)
        first = bulkhead.slot()
        await first.__aenter__()
        waiter = asyncio.create_task(hold(bulkhead, asyncio.Event()))
        while bulkhead.waiting == 0:
            await asyncio.sleep(0)
        # hand the slot to the waiter and cancel it before it gets to run
        await first.__aexit__(None, None, None)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        assert bulkhead.in_use == 0 and bulkhead.waiting == 0

    asyncio.run(main())


def test_body_exception_releases_slot() -> None:
    async def main() -> None:
        bulkhead = Bulkhead("inventory", max_concurrent=1)
        with pytest.raises(RuntimeError):
            async with bulkhead.slot():
                raise RuntimeError("downstream blew up")
        assert bulkhead.in_use == 0

    asyncio.run(main())


def test_concurrency_bound_and_no_leaks_under_random_cancellation() -> None:
    rnd = random.Random(7)

    async def main() -> None:
        bulkhead = Bulkhead("orders", max_concurrent=5, max_wait_s=0.002)
        peak = 0

        async def work() -> None:
            nonlocal peak
            try:
                async with bulkhead.slot():
                    peak = max(peak, bulkhead.in_use)
                    for _ in range(rnd.randint(0, 5)):
                        await asyncio.sleep(0)
            except BulkheadFullError:
                pass

        tasks = [asyncio.create_task(work()) for _ in range(300)]
        for _ in range(3):
            await asyncio.sleep(0)
            for t in rnd.sample(tasks, 40):
                t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert peak <= 5
        assert bulkhead.in_use == 0 and bulkhead.waiting == 0

    asyncio.run(main())

"""shop.downstream: a call refused before anything is sent (bulkhead full, deadline gone)
leaves the breaker as it was; a call that is sent counts.

The real Downstream, breaker, bulkhead and HTTP client. The refused calls never open a
connection; the one that is sent goes to a loopback port nothing listens on (connection
refused: a failure the breaker must count).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest
from shop.downstream import CallTrace, Downstream
from shop.http_client import HttpClient
from shop.resilience import (
    BreakerState,
    BulkheadFullError,
    Deadline,
    DeadlineExceededError,
    DownstreamError,
)
from shop.settings import SERVICE_NAMES, ShopSettings

from tests.support import free_port, wait_for


def settings(tmp_path: Path, **overrides: object) -> ShopSettings:
    port = free_port()  # nothing listens there
    base = ShopSettings(service="orders", redis_url="redis://127.0.0.1:1/0", data_dir=tmp_path,
                        database_url=None, admin_token=None,
                        urls={n: f"http://127.0.0.1:{port}" for n in SERVICE_NAMES},
                        bulkhead_size=1, bulkhead_wait_s=0.0, hop_timeouts={"inventory": 2.0})
    return replace(base, **overrides)  # type: ignore[arg-type]


async def refused_by_full_bulkhead(ds: Downstream, n: int) -> None:
    async with ds.bulkhead.slot():  # the only slot, held: every call is refused locally
        for _ in range(n):
            trace = CallTrace()
            with pytest.raises(BulkheadFullError):
                await ds.call("POST", "/inventory/reserve", deadline=Deadline.after(5),
                              json={}, retry=False, trace=trace)
            assert trace.sent == 0


async def refused_by_deadline(ds: Downstream, n: int) -> None:
    for _ in range(n):
        trace = CallTrace()
        with pytest.raises(DeadlineExceededError):
            await ds.call("POST", "/inventory/reserve", deadline=Deadline.after(-1), json={},
                          retry=False, trace=trace)
        assert trace.sent == 0


async def sent_and_failed(ds: Downstream) -> None:
    with pytest.raises(DownstreamError):
        await ds.call("POST", "/inventory/reserve", deadline=Deadline.after(5), json={},
                      retry=False)


@pytest.mark.parametrize("refuse", [refused_by_full_bulkhead, refused_by_deadline])
def test_local_refusals_are_not_breaker_outcomes(tmp_path: Path, refuse) -> None:  # noqa: ANN001
    ds = Downstream("inventory", settings(tmp_path), HttpClient())

    async def main() -> None:
        await refuse(ds, 25)
        snap = ds.breaker.snapshot()
        assert snap["calls_in_window"] == 0, snap  # they used to count as 25 successes
        for _ in range(ds.breaker.config.minimum_calls):  # then real failures, sent
            await sent_and_failed(ds)
        # 10 failures of 10 calls: open. With the 25 refusals as successes it was 10 of 35.
        assert ds.breaker.snapshot()["calls_in_window"] == ds.breaker.config.minimum_calls
        assert ds.breaker.state is BreakerState.OPEN

    asyncio.run(main())


@pytest.mark.parametrize("refuse", [refused_by_full_bulkhead, refused_by_deadline])
def test_a_refused_probe_keeps_the_breaker_half_open(tmp_path: Path, refuse) -> None:  # noqa: ANN001
    ds = Downstream("inventory", settings(tmp_path, breaker_open_s=0.01, half_open_probes=1),
                    HttpClient())

    async def main() -> None:
        for _ in range(ds.breaker.config.minimum_calls):
            await sent_and_failed(ds)
        wait_for(lambda: ds.breaker.state is BreakerState.HALF_OPEN, timeout=10,
                 what="the breaker to go half-open")
        await refuse(ds, 1)  # took the only probe permit, sent nothing
        # Not closed by a "success" the downstream never gave, and the slot is free again.
        assert ds.breaker.state is BreakerState.HALF_OPEN
        probe = ds.breaker.try_acquire()
        assert probe is not None and probe.is_probe
        probe.release()
        await sent_and_failed(ds)  # a real probe that fails reopens it
        assert ds.breaker.state is BreakerState.OPEN

    asyncio.run(main())


def test_a_probe_whose_caller_is_cancelled_gives_its_slot_back(tmp_path: Path) -> None:
    """The caller went away (its task cancelled, e.g. the client hung up) while the only
    half-open probe was waiting on a downstream that accepts and never answers: nothing is
    known of the downstream, so no outcome, and the probe slot is free at once (it used to
    stay taken until the breaker's probe timeout reopened it)."""
    import socket

    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(4)  # accepts; nothing ever answers
    url = f"http://127.0.0.1:{hole.getsockname()[1]}"
    base = settings(tmp_path, breaker_open_s=0.01, half_open_probes=1)
    ds = Downstream("inventory", base, HttpClient())

    async def main() -> None:
        for _ in range(ds.breaker.config.minimum_calls):
            await sent_and_failed(ds)
        wait_for(lambda: ds.breaker.state is BreakerState.HALF_OPEN, timeout=10,
                 what="the breaker to go half-open")
        ds.base_url = url
        call = asyncio.create_task(ds.call("POST", "/inventory/reserve",
                                           deadline=Deadline.after(5), json={}, retry=False))
        await asyncio.sleep(0.2)  # sent, waiting for an answer that never comes
        assert not call.done()
        assert ds.breaker.try_acquire() is None  # the call holds the only probe
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert ds.breaker.state is BreakerState.HALF_OPEN
        probe = ds.breaker.try_acquire()
        assert probe is not None and probe.is_probe  # free again, at once
        probe.release()

    try:
        asyncio.run(main())
    finally:
        hole.close()

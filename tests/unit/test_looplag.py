"""shop.looplag: a service's event loop lag, measured on a real event loop."""

from __future__ import annotations

import asyncio
import time

import pytest
from shop.looplag import HEADER, LoopLag, parse_ms


def test_a_blocked_loop_shows_in_the_lag_and_its_header() -> None:
    async def main() -> tuple[float, bytes, bytes]:
        lag = LoopLag("orders")
        lag.start()
        lag.start()  # once per process, however many requests start it
        await asyncio.sleep(0.3)
        time.sleep(0.2)  # every callback of this loop now runs 200 ms late
        await asyncio.sleep(0.05)  # the late sample closes its window (the next is 0.25 s)
        return lag.value_s, *lag.header

    value, name, text = asyncio.run(main())
    assert name == HEADER.encode()
    # one sample 200 ms late among at most ~10 in its window
    assert value >= 0.015
    assert parse_ms(text.decode()) == pytest.approx(value, abs=1e-4)


def test_the_timer_stops_when_requests_stop_and_starts_again_with_the_next() -> None:
    async def main() -> tuple[bool, bool, bool]:
        lag = LoopLag("notifications")
        lag.start()
        for _ in range(6):  # requests every 0.1 s: measuring
            await asyncio.sleep(0.1)
            lag.start()
        busy = lag.running
        await asyncio.sleep(0.7)  # no request for more than two windows
        idle = lag.running
        lag.start()
        return busy, idle, lag.running

    assert asyncio.run(main()) == (True, False, True)


@pytest.mark.parametrize(("raw", "seconds"), [
    (None, None), ("", None), ("fast", None), ("-1", None), ("nan", None), ("inf", None),
    ("0.3", 0.0003), ("12.5", 0.0125)])
def test_a_reported_lag_is_read_or_ignored(raw: str | None, seconds: float | None) -> None:
    assert parse_ms(raw) == (None if seconds is None else pytest.approx(seconds))

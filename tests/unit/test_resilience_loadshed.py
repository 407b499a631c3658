"""Load-shedding ASGI middleware, driven directly with hand-written scope/receive/send."""

from __future__ import annotations

import asyncio
import json

import pytest
from shop.resilience import LoadShedMiddleware


class App:
    """A tiny ASGI app whose /slow requests block until `release` is set."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered = 0
        self.seen: list[str] = []

    async def __call__(self, scope, receive, send) -> None:
        self.seen.append(scope["type"])
        if scope["type"] != "http":
            return
        self.entered += 1
        if scope["path"] == "/boom":
            raise RuntimeError("app failed")
        if scope["path"] == "/slow":
            await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def request(app, path: str, scope_type: str = "http") -> dict:
    messages: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        messages.append(message)

    scope = {"type": scope_type, "path": path, "method": "GET", "headers": []}
    await app(scope, receive, send)
    start = messages[0] if messages else {}
    return {
        "status": start.get("status"),
        "headers": {k.decode(): v.decode() for k, v in start.get("headers", [])},
        "body": b"".join(m.get("body", b"") for m in messages[1:]),
    }


def test_sheds_request_over_limit_and_accepts_after_release() -> None:
    async def main() -> None:
        inner = App()
        shed: list[int] = []
        mw = LoadShedMiddleware(inner, max_inflight=3, on_shed=lambda: shed.append(1))
        held = [asyncio.create_task(request(mw, "/slow")) for _ in range(3)]
        while inner.entered < 3:
            await asyncio.sleep(0)
        assert mw.inflight == 3

        rejected = await request(mw, "/orders")
        assert rejected["status"] == 429
        assert rejected["headers"]["retry-after"] == "5"
        assert rejected["headers"]["content-type"] == "application/json"
        assert json.loads(rejected["body"]) == {
            "error": "overloaded",
            "detail": "gateway is shedding load; retry after 5 s",
        }
        assert shed == [1]
        assert inner.entered == 3  # the app never saw the shed request

        # exempt paths pass even at the limit
        assert (await request(mw, "/health"))["status"] == 200
        assert (await request(mw, "/metrics"))["status"] == 200

        inner.release.set()
        results = await asyncio.gather(*held)
        assert [r["status"] for r in results] == [200, 200, 200]
        assert mw.inflight == 0
        assert (await request(mw, "/orders"))["status"] == 200
        assert len(shed) == 1

    asyncio.run(main())


def test_counter_decremented_when_app_raises() -> None:
    async def main() -> None:
        mw = LoadShedMiddleware(App(), max_inflight=1)
        with pytest.raises(RuntimeError):
            await request(mw, "/boom")
        assert mw.inflight == 0
        assert (await request(mw, "/orders"))["status"] == 200

    asyncio.run(main())


def test_non_http_scopes_are_not_counted_or_shed() -> None:
    async def main() -> None:
        inner = App()
        mw = LoadShedMiddleware(inner, max_inflight=0)
        await request(mw, "", scope_type="lifespan")
        await request(mw, "/ws", scope_type="websocket")
        assert inner.seen == ["lifespan", "websocket"]
        assert (await request(mw, "/orders"))["status"] == 429
        assert mw.inflight == 0

    asyncio.run(main())


def test_retry_after_is_configurable() -> None:
    async def main() -> None:
        mw = LoadShedMiddleware(App(), max_inflight=0, retry_after_s=7)
        r = await request(mw, "/orders")
        assert r["headers"]["retry-after"] == "7"
        assert "retry after 7 s" in json.loads(r["body"])["detail"]

    asyncio.run(main())


class StatusApp:
    """Answers with the status named in the path (`/201`, `/503`) at once."""

    async def __call__(self, scope, receive, send) -> None:
        status = int(scope["path"].strip("/"))
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


def test_failed_or_fallback_answers_give_the_adaptive_limit_no_latency_sample() -> None:
    """A 202 (order recorded but a dependency failed), a 5xx or a deeper 429 says how slow a
    dependency was, not whether requests queue here: no sample, no served count."""
    from shop.resilience import AdaptiveLimit, AdaptiveLimitConfig, FakeClock

    async def main() -> None:
        clock = FakeClock()
        limit = AdaptiveLimit(AdaptiveLimitConfig(min_samples=1, window_s=0.001), clock=clock)
        mw = LoadShedMiddleware(StatusApp(), limiter=limit)
        for status in (202, 429, 500, 502, 503, 504):
            clock.advance(1)
            assert (await request(mw, f"/{status}"))["status"] == status
        assert limit.short_rtt is None and limit.served_rate() is None
        assert limit.inflight == 0
        for status in (201, 200, 404):
            clock.advance(1)
            assert (await request(mw, f"/{status}"))["status"] == status
        assert limit.short_rtt is not None and limit.served_rate() is not None
        assert limit.inflight == 0

    asyncio.run(main())

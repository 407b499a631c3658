"""Load shedding as a pure ASGI middleware: refuse excess requests before doing any work.

A plain ASGI wrapper (not BaseHTTPMiddleware) answers 429 without touching the app, so an
overloaded gateway spends nothing on the requests it sheds and keeps latency for the ones
it admits. The limit is either static (`max_inflight`) or an `AdaptiveLimit`
(shop/resilience/adaptive.py) that follows the admitted requests' latency and lets a few
wait, for a bounded time, for a slot.

The gateway wraps its whole FastAPI app in it (shop/gateway.py): a refusal never reaches
FastAPI's dispatch, routing, the request metrics or the handlers. An admitted request's
latency is a sample for the limit only when its answer says the work was done here and downstream
(NOT_SAMPLED: a failure or fallback of a dependency says nothing about queueing).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .adaptive import AdaptiveLimit

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# 202: an order recorded but failed (a dependency failed or timed out); 429: refused further
# in (a full bulkhead); 5xx: a dependency or the deadline failed.
NOT_SAMPLED = frozenset({202, 429, 500, 502, 503, 504})


class LoadShedMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        max_inflight: int = 200,
        on_shed: Callable[[], None] | None = None,
        exempt_paths: tuple[str, ...] = ("/health", "/metrics"),
        retry_after_s: int = 5,
        limiter: AdaptiveLimit | None = None,
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.max_inflight = max_inflight
        self.on_shed = on_shed
        self.exempt_paths = exempt_paths
        self.retry_after_s = retry_after_s
        self._inflight = 0
        self._exact = frozenset(exempt_paths)
        self._prefixes = tuple(p + "/" for p in exempt_paths)
        self._body = json.dumps(
            {
                "error": "overloaded",
                "detail": f"gateway is shedding load; retry after {retry_after_s} s",
            }
        ).encode()
        self._headers = [
            (b"content-type", b"application/json"),
            (b"retry-after", str(retry_after_s).encode()),
            (b"content-length", str(len(self._body)).encode()),
        ]

    @property
    def inflight(self) -> int:
        return self.limiter.inflight if self.limiter is not None else self._inflight

    def _exempt(self, path: str) -> bool:
        # Health checks and scrapes must keep working exactly when the service is overloaded.
        return path in self._exact or path.startswith(self._prefixes)

    def refuse_now(self, path: str) -> bool:
        """The HTTP server's early check (shop.shed_protocol), before any request object
        exists: True means this request is refused (counted, on_shed called) and the caller
        writes `self.body`/`self.headers` as a 429 itself. False changes nothing: the
        request goes through __call__ as usual, which decides again (so an early "no" is
        never a wrong admission, only a missed shortcut)."""
        if self._exempt(path):
            return False
        if self.limiter is not None:
            refused = self.limiter.refuse_now()
        else:
            refused = self._inflight >= self.max_inflight
        if refused and self.on_shed is not None:
            self.on_shed()
        return refused

    @property
    def body(self) -> bytes:
        return self._body

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        return list(self._headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._exempt(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        if self.limiter is not None:
            await self._adaptive(scope, receive, send, self.limiter)
            return
        if self._inflight >= self.max_inflight:
            if self.on_shed is not None:
                self.on_shed()
            await self._reject(send)
            return
        self._inflight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self._inflight -= 1

    async def _adaptive(self, scope: Scope, receive: Receive, send: Send,
                        limiter: AdaptiveLimit) -> None:
        if not limiter.try_acquire() and not (limiter.may_wait()
                                                and await limiter.wait_for_slot()):
            if self.on_shed is not None:
                self.on_shed()
            await self._reject(send)
            return
        start, epoch = time.perf_counter(), limiter.epoch
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            rtt = None if status in NOT_SAMPLED else time.perf_counter() - start
            limiter.release(rtt, epoch)

    async def _reject(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": 429,
                    "headers": list(self._headers)})
        await send({"type": "http.response.body", "body": self._body})

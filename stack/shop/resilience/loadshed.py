"""Load shedding as a pure ASGI middleware: refuse excess requests before doing any work.

A plain ASGI wrapper (not BaseHTTPMiddleware) costs one integer compare per request and
answers 429 without touching the app, so an overloaded gateway spends nothing on the
requests it sheds and keeps latency for the ones it admits.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class LoadShedMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        max_inflight: int = 200,
        on_shed: Callable[[], None] | None = None,
        exempt_paths: tuple[str, ...] = ("/health", "/metrics"),
        retry_after_s: int = 5,
    ) -> None:
        self.app = app
        self.max_inflight = max_inflight
        self.on_shed = on_shed
        self.exempt_paths = exempt_paths
        self.retry_after_s = retry_after_s
        self._inflight = 0
        self._body = json.dumps(
            {
                "error": "overloaded",
                "detail": f"gateway is shedding load; retry after {retry_after_s} s",
            }
        ).encode()

    @property
    def inflight(self) -> int:
        return self._inflight

    def _exempt(self, path: str) -> bool:
        # Health checks and scrapes must keep working exactly when the service is overloaded.
        return any(path == p or path.startswith(p + "/") for p in self.exempt_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._exempt(scope.get("path", "")):
            await self.app(scope, receive, send)
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

    async def _reject(self, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"retry-after", str(self.retry_after_s).encode()),
                    (b"content-length", str(len(self._body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": self._body})

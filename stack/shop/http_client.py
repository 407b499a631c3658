"""The one HTTP client a service uses to call the others: a pooled aiohttp session.

Why not httpx: issue 13's profile put httpx/httpcore/anyio at 40 % of the orders service's CPU
and 25-30 % of the gateway's (a per-request scan of the pool, anyio stream wrappers, cookie
handling); aiohttp's C-accelerated client does the same call for a fraction of that. One
session per service process, created on first use inside the running loop, closed in the
app's lifespan. No cookies, no proxies from the environment, keep-alive shorter than the
servers' (uvicorn closes idle connections after 5 s) so a reused connection is not one the
server is closing.

Callers read `status_code`, `headers` (case-insensitive), `content`, `text` and `json()`;
a call without an answer raises `TransportError` (`Timeout` when time ran out).
"""

from __future__ import annotations

import json as jsonlib
from typing import Any

KEEPALIVE_S = 3.0  # below uvicorn's timeout_keep_alive (5 s)


class TransportError(Exception):
    """No HTTP answer: connection refused or reset, or the server went away mid-request."""


class Timeout(TransportError):
    """No answer within the timeout."""


class Response:
    """An answer, read whole (every body between the services is small JSON)."""

    __slots__ = ("status_code", "headers", "content")

    def __init__(self, status_code: int, headers: Any, content: bytes) -> None:
        self.status_code, self.headers, self.content = status_code, headers, content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not JSON."""
        return jsonlib.loads(self.content)


class HttpClient:
    def __init__(self, max_connections: int = 200) -> None:
        self.max_connections = max_connections
        self._session: Any = None

    def _open(self) -> Any:
        import aiohttp

        connector = aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=0,
                                         keepalive_timeout=KEEPALIVE_S, ttl_dns_cache=None,
                                         use_dns_cache=True)
        self._session = aiohttp.ClientSession(connector=connector,
                                              cookie_jar=aiohttp.DummyCookieJar(),
                                              trust_env=False, auto_decompress=False)
        return self._session

    async def request(self, method: str, url: str, *, json: Any = None,
                      headers: dict[str, str] | None = None,
                      timeout: float = 5.0) -> Response:
        import aiohttp
        from yarl import URL

        session = self._session or self._open()
        data = None
        if json is not None:
            data = jsonlib.dumps(json).encode()
            headers = {**(headers or {}), "Content-Type": "application/json"}
        try:
            # encoded=True: the callers encode paths themselves (the gateway's path_segment
            # keeps `..` an order id); re-quoting would undo that.
            async with session.request(method, URL(url, encoded=True), data=data, headers=headers,
                                       timeout=aiohttp.ClientTimeout(total=timeout),
                                       allow_redirects=False) as answer:
                return Response(answer.status, answer.headers, await answer.read())
        except TimeoutError as exc:  # aiohttp's own timeouts subclass it too
            raise Timeout(f"no answer from {url} within {timeout:g} s") from exc
        except aiohttp.ClientError as exc:
            raise TransportError(f"{type(exc).__name__}: {exc}") from exc

    async def get(self, url: str, **kwargs: Any) -> Response:
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> Response:
        return await self.request("POST", url, **kwargs)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

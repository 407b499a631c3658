"""The one HTTP client a service uses to call the others: pooled keep-alive HTTP/1.1 over
asyncio, responses parsed by httptools (the C parser uvicorn uses).

Why not a general client: issue 13's profiles put httpx at 40 % of the orders service's CPU,
and aiohttp, its replacement, still at ~25 % of the gateway's and ~15 % of orders' (a request
object, a timer, a stream reader, a payload writer, cookie and redirect machinery per call).
The calls between the services are small JSON requests to plain-HTTP loopback peers, so this
client does only that: one write per request, one parser per connection, connections reused
while alive and idle less than KEEPALIVE_S (below uvicorn's 5 s, so a reused connection is not
one the server is closing). No TLS, cookies, proxies, redirects or decompression; at most
`max_connections` requests in flight (more wait, within their timeout).

Callers read `status_code`, `headers` (case-insensitive), `content`, `text` and `json()`;
a call without an answer raises `TransportError` (`Timeout` when time ran out). A connection
that failed, timed out or was cancelled mid-request is closed, never reused.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import socket
import time
from typing import Any

KEEPALIVE_S = 3.0  # below uvicorn's timeout_keep_alive (5 s)


class TransportError(Exception):
    """No HTTP answer: connection refused or reset, or the server went away mid-request."""


class Timeout(TransportError):
    """No answer within the timeout."""


class _TimedOut(Exception):
    """Set on a pooled call's answer by its timer (see HttpClient._on_pooled)."""


class Headers:
    """Response headers: `get` and `in` ignore case; `items()` gives them as received.
    Decoded on first use: most calls between the services read only the status."""

    __slots__ = ("_raw", "_items", "_lower")

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._raw = raw
        self._items: list[tuple[str, str]] | None = None
        self._lower: dict[str, str] | None = None

    def _decoded(self) -> dict[str, str]:
        if self._lower is None:
            self._items = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in self._raw]
            self._lower = {}
            for name, value in self._items:
                self._lower.setdefault(name.lower(), value)
        return self._lower

    def get(self, name: str, default: Any = None) -> Any:
        return self._decoded().get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return self._decoded()[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._decoded()

    def items(self) -> list[tuple[str, str]]:
        self._decoded()
        return list(self._items or ())

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"


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


class _Connection(asyncio.Protocol):
    """One keep-alive connection; answers one request at a time."""

    def __init__(self) -> None:
        import httptools

        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[Response] | None = None
        self._status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._headers_done = False

    # -- asyncio.Protocol ------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:  # pragma: no cover - not a TCP socket
                pass

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # nothing asked: a server must not talk first
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except Exception as exc:  # noqa: BLE001 - httptools.HttpParserError and friends
            self._fail(TransportError(f"bad HTTP response: {exc}"))
            self.close()

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._headers_done and not self._framed():
            self._finish()  # a body delimited by the close (HTTP/1.0 style)
            return
        self._fail(TransportError(
            f"connection closed before a complete response ({exc or 'EOF'})"))

    # -- httptools callbacks ---------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._status = self.parser.get_status_code()
        self._headers_done = True

    def _framed(self) -> bool:
        """Content-Length or chunked: the end is known without a close."""
        for name, value in self._headers:
            low = name.lower()
            if low == b"content-length" or (low == b"transfer-encoding"
                                            and b"chunked" in value.lower()):
                return True
        return False

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if not self.parser.should_keep_alive():
            self.closed = True  # answered, but not reusable
        self._finish()

    # -- use -------------------------------------------------------------------------
    def _finish(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(Response(self._status, Headers(self._headers),
                                       b"".join(self._body)))

    def _fail(self, exc: Exception) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def send(self, payload: bytes) -> asyncio.Future[Response]:
        self._waiter = asyncio.get_running_loop().create_future()
        self._status, self._headers, self._body = 0, [], []
        self._headers_done = False
        self.transport.write(payload)  # type: ignore[union-attr]
        return self._waiter

    def time_out(self, waiter: asyncio.Future[Response]) -> None:
        if not waiter.done():
            waiter.set_exception(_TimedOut())

    def done_with(self) -> None:
        self._waiter = None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


def _split(url: str) -> tuple[str, int, str, str]:
    """(host, port, host header, request target) of an http:// URL, target as given."""
    if not url.startswith("http://"):
        raise TransportError(f"only http:// URLs are supported, not {url!r}")
    rest = url[7:]
    slash = rest.find("/")
    query = rest.find("?")
    cut = min(i for i in (slash, query, len(rest)) if i >= 0)
    authority, target = rest[:cut], rest[cut:] or "/"
    if target.startswith("?"):
        target = "/" + target
    if authority.startswith("["):  # [::1]:8000
        host, _, port = authority[1:].partition("]")
        port = port.lstrip(":")
    else:
        host, _, port = authority.partition(":")
    return host, int(port) if port else 80, authority, target


class HttpClient:
    def __init__(self, max_connections: int = 200) -> None:
        self.max_connections = max_connections
        self._idle: dict[tuple[str, int], list[_Connection]] = {}
        self._gate: asyncio.Semaphore | None = None
        self._targets: dict[str, tuple[str, int, str, str]] = {}

    def _target(self, url: str) -> tuple[str, int, str, str]:
        hit = self._targets.get(url)
        if hit is None:
            hit = _split(url)
            if len(self._targets) < 4096:  # paths with ids vary: keep the cache bounded
                self._targets[url] = hit
        return hit

    async def _connect(self, host: str, port: int) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _transport, conn = await loop.create_connection(_Connection, host, port)
        except OSError as exc:
            raise TransportError(f"cannot connect to {host}:{port}: {exc}") from exc
        return conn

    def _pooled(self, key: tuple[str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < KEEPALIVE_S:
                return conn
            conn.close()
        return None

    def _release(self, key: tuple[str, int], conn: _Connection) -> None:
        conn.done_with()
        if conn.closed:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        idle = self._idle.setdefault(key, [])
        if len(idle) < self.max_connections:
            idle.append(conn)
        else:
            conn.close()

    def _encode(self, method: str, authority: str, target: str, headers: dict[str, str] | None,
                body: bytes | None, content_type: str | None) -> bytes:
        lines = [f"{method} {target} HTTP/1.1"]
        given = {k.lower() for k in headers} if headers else set()
        if "host" not in given:
            lines.append(f"Host: {authority}")
        if content_type and "content-type" not in given:
            lines.append(f"Content-Type: {content_type}")
        for name, value in (headers or {}).items():
            name, value = str(name), str(value)
            if ("\r" in name or "\n" in name or "\r" in value or "\n" in value
                    or ":" in name):
                raise ValueError(f"invalid header {name!r}")
            if name.lower() != "content-length":
                lines.append(f"{name}: {value}")
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body or b'')}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head + body if body else head

    async def request(self, method: str, url: str, *, json: Any = None,
                      headers: dict[str, str] | None = None,
                      timeout: float = 5.0) -> Response:
        host, port, authority, target = self._target(url)
        body = jsonlib.dumps(json).encode() if json is not None else None
        payload = self._encode(method, authority, target, headers, body,
                               "application/json" if json is not None else None)
        if self._gate is None:
            self._gate = asyncio.Semaphore(self.max_connections)
        key = (host, port)
        conn: _Connection | None = None
        if not self._gate.locked():
            conn = self._pooled(key)
            if conn is not None:
                return await self._on_pooled(key, conn, payload, url, timeout)
        try:
            async with asyncio.timeout(timeout):
                async with self._gate:
                    conn = self._pooled(key) or await self._connect(host, port)
                    answer = await conn.send(payload)
        except TimeoutError as exc:
            if conn is not None:
                conn.close()
            raise Timeout(f"no answer from {url} within {timeout:g} s") from exc
        except BaseException:
            if conn is not None:
                conn.close()  # failed or cancelled mid-request: its state is unknown
            raise
        self._release(key, conn)
        return answer

    async def _on_pooled(self, key: tuple[str, int], conn: _Connection, payload: bytes,
                         url: str, timeout: float) -> Response:
        """The common case: a free slot and an idle connection, so nothing can wait but the
        answer. Its timeout is one timer on the answer instead of an asyncio.timeout scope
        (which also reschedules and uncancels the task): ~25 us less CPU per call here."""
        gate = self._gate
        await gate.acquire()  # free (checked by the caller): returns at once
        answer = conn.send(payload)
        timer = asyncio.get_running_loop().call_later(timeout, conn.time_out, answer)
        try:
            response = await answer
        except BaseException as exc:
            conn.close()  # failed, timed out or cancelled mid-request: its state is unknown
            if isinstance(exc, _TimedOut):
                raise Timeout(f"no answer from {url} within {timeout:g} s") from None
            raise
        finally:
            timer.cancel()
            gate.release()
        self._release(key, conn)
        return response

    async def get(self, url: str, **kwargs: Any) -> Response:
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> Response:
        return await self.request("POST", url, **kwargs)

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()

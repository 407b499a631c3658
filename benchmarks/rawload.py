"""A lean open-loop HTTP/1.1 load client for loopback benchmarks (benchmarks/overload.py).

chaosctl's LoadGenerator (httpx) spends ~15-20 ms of CPU per order on this machine, so on two
shared cores it could not offer more than ~50-60 orders/s: every "overload" figure measured
the client. This one writes pre-built request bytes on a fixed pool of keep-alive
connections (asyncio Protocols, uvloop when installed) and parses only the status line,
Content-Length and Retry-After, so its own cost is a few tens of microseconds per request.

Open loop: request i is due at start + i / rate whatever happened to earlier ones. Bounded:
exactly `sum(rate x seconds)` requests, at most `connections` in flight; a request due while
every connection is busy waits for one, and that wait is recorded (`lag_s`), so a client that
cannot keep up shows it instead of quietly offering less. Loopback only.

`drop_when_busy=True` makes the client an oracle admission limit instead: a request due while
every connection is busy is not sent at all (counted in `dropped`), so at most `connections`
are in flight and a refusal costs the server nothing (benchmarks/overload_ceiling.py).
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class Result:
    due: float  # when the open-loop schedule wanted it sent (monotonic)
    sent: float  # when it was written
    done: float  # when its answer was complete
    status: int  # 0: the connection failed
    retry_after: bool

    @property
    def latency_s(self) -> float:  # the server's: from write to complete answer
        return self.done - self.sent

    @property
    def lag_s(self) -> float:  # the client's: waiting for a free connection or the loop
        return self.sent - self.due


def order_bytes(host: str, port: int, i: int) -> bytes:
    """POST /orders with a small valid order and a fresh Idempotency-Key."""
    body = (f'{{"customer_id":"raw-{i % 1000}","items":[{{"product_id":"SKU-{i % 100 + 1:03d}",'
            f'"quantity":1,"unit_price":9.99}}]}}').encode()
    head = (f"POST /orders HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nIdempotency-Key: raw-{uuid.uuid4().hex}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    return head + body


class _Conn(asyncio.Protocol):
    """One keep-alive connection: one request at a time, answers parsed just enough."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, bool]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((0, False))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        head = bytes(self.buf[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        stop = head.find(b"\r\n", at + 2)
        length = int(head[at + 17:stop if stop > 0 else len(head)]) if at >= 0 else 0
        if len(self.buf) < end + 4 + length:
            return
        status = int(head[9:12])
        del self.buf[:end + 4 + length]
        if not self.waiter.done():
            self.waiter.set_result((status, b"\r\nretry-after:" in head))

    async def request(self, data: bytes) -> tuple[int, bool]:
        if self.transport is None:
            return 0, False
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.waiter


class RawLoad:
    """Open-loop segments of (rate per s, seconds) against one loopback HTTP server."""

    def __init__(self, url: str, connections: int = 256,
                 make_request: Callable[[str, int, int], bytes] = order_bytes,
                 drop_when_busy: bool = False) -> None:
        scheme, _, rest = url.partition("://")
        host, _, port = rest.rstrip("/").partition(":")
        if scheme != "http" or not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"loopback http:// URLs only, not {url!r}")
        if not 1 <= connections <= 2000:
            raise ValueError("need 1 <= connections <= 2000")
        self.host, self.port, self.connections = host, int(port), connections
        self.make_request = make_request
        self.drop_when_busy = drop_when_busy
        self.dropped = 0
        self.results: list[Result] = []
        self._idle: deque[_Conn] = deque()
        self._free = asyncio.Event()

    async def _connect(self) -> _Conn:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(_Conn, self.host, self.port)
        return conn

    async def _one(self, due: float, data: bytes) -> None:
        if self.drop_when_busy and not self._idle:
            self.dropped += 1
            return
        while not self._idle:
            self._free.clear()
            await self._free.wait()
        conn = self._idle.popleft()
        if conn.transport is None:
            conn = await self._connect()
        sent = time.monotonic()
        status, retry_after = await conn.request(data)
        self.results.append(Result(due, sent, time.monotonic(), status, retry_after))
        self._idle.append(conn)
        self._free.set()

    async def run(self, segments: list[tuple[float, float]], start: float | None = None
                  ) -> float:
        """Send every segment in turn; returns the monotonic start. Pre-builds the bytes."""
        if len(self._idle) < self.connections:
            conns = await asyncio.gather(*(self._connect()
                                           for _ in range(self.connections - len(self._idle))))
            self._idle.extend(conns)
        schedule: list[float] = []
        offset = 0.0
        for rate, seconds in segments:
            if rate > 0:
                schedule += [offset + k / rate for k in range(int(rate * seconds))]
            offset += seconds
        payloads = [self.make_request(self.host, self.port, i) for i in range(len(schedule))]
        t0 = time.monotonic() if start is None else start
        tasks = []
        for due, data in zip(schedule, payloads, strict=True):
            wait = t0 + due - time.monotonic()
            if wait > 0.001:
                await asyncio.sleep(wait)
            tasks.append(asyncio.ensure_future(self._one(t0 + due, data)))
        await asyncio.gather(*tasks)
        return t0

    async def closed(self, workers: int, seconds: float, max_requests: int = 100_000) -> float:
        """Closed loop: `workers` connections each send their next request as soon as the
        last one is answered (a refused one after 50 ms: a 429 must not become a busy loop
        whose retries are themselves an overload)."""
        conns = [await self._connect() for _ in range(workers)]
        count = 0
        stop = time.monotonic() + seconds

        async def worker(conn: _Conn) -> None:
            nonlocal count
            while time.monotonic() < stop and count < max_requests:
                count += 1
                sent = time.monotonic()
                status, retry_after = await conn.request(
                    self.make_request(self.host, self.port, count))
                self.results.append(Result(sent, sent, time.monotonic(), status, retry_after))
                if status != 201 and status != 202:
                    await asyncio.sleep(0.05)
                if conn.transport is None:
                    conn = await self._connect()

        t0 = time.monotonic()
        await asyncio.gather(*(worker(c) for c in conns))
        for conn in conns:
            if conn.transport is not None:
                conn.transport.close()
        return t0

    def close(self) -> None:
        for conn in self._idle:
            if conn.transport is not None:
                conn.transport.close()
        self._idle.clear()


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()

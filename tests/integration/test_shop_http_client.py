"""shop.http_client against a real HTTP/1.1 server on a loopback socket (asyncio streams): what
goes on the wire, keep-alive reuse, chunked bodies, closes, timeouts and refused connections.

The server is scripted per test so each behaviour the client must survive (a server closing
an idle keep-alive connection, never answering, answering `Connection: close`) happens for
real on the socket.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

STACK = str(Path(__file__).resolve().parents[2] / "stack")
if STACK not in sys.path:
    sys.path.insert(0, STACK)

from shop.http_client import HttpClient, Timeout, TransportError  # noqa: E402

Handler = Callable[[bytes, bytes, asyncio.StreamWriter], Awaitable[bool]]


class Server:
    """A loopback HTTP/1.1 server: reads each request (head + Content-Length body) and lets
    `handler(head, body, writer)` answer; the handler returns False to close the connection."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[tuple[bytes, bytes]] = []
        self.connections = 0
        self.server: asyncio.base_events.Server | None = None

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b""
                self.requests.append((head, body))
                if not await self.handler(head, body, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def answer(status: int, body: bytes, *extra: str) -> bytes:
    lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}",
             "Content-Type: application/json", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def echo(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> bool:
    writer.write(answer(200, json.dumps({"seen": len(body)}).encode(),
                        "X-Idempotency-Replayed: true"))
    await writer.drain()
    return True


def run(coro: Awaitable[None]) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def header(head: bytes, name: bytes) -> bytes | None:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip()
    return None


def test_json_request_on_the_wire_and_keep_alive_reuse() -> None:
    async def go() -> None:
        async with Server(echo) as server:
            client = HttpClient()
            try:
                first = await client.post(server.url + "/orders", json={"a": 1},
                                          headers={"X-Correlation-ID": "corr_1"})
                second = await client.get(server.url + "/orders/a%2Fb?limit=5")
            finally:
                await client.aclose()
            assert (first.status_code, first.json()) == (200, {"seen": len(b'{"a": 1}')})
            assert second.status_code == 200
            # Case-insensitive headers; items() keeps them as received.
            assert first.headers.get("x-idempotency-replayed") == "true"
            assert ("X-Idempotency-Replayed", "true") in first.headers.items()
            assert server.connections == 1, "the second call must reuse the connection"
            (head1, body1), (head2, body2) = server.requests
            assert head1.startswith(b"POST /orders HTTP/1.1\r\n")
            assert json.loads(body1) == {"a": 1}
            assert header(head1, b"content-type") == b"application/json"
            assert header(head1, b"content-length") == str(len(body1)).encode()
            assert header(head1, b"x-correlation-id") == b"corr_1"
            assert header(head1, b"host") == server.url.removeprefix("http://").encode()
            # The path is sent as given (the gateway encodes order ids itself).
            assert head2.startswith(b"GET /orders/a%2Fb?limit=5 HTTP/1.1\r\n")
            assert body2 == b"" and header(head2, b"content-length") is None
    run(go())


def test_host_header_given_by_the_caller_replaces_ours() -> None:
    async def go() -> None:
        async with Server(echo) as server:
            client = HttpClient()
            try:
                await client.post(server.url + "/x", headers={"Host": "127.0.0.1"})
            finally:
                await client.aclose()
            head = server.requests[0][0]
            assert head.count(b"\r\nHost:") + head.count(b"\r\nhost:") == 1
            assert header(head, b"host") == b"127.0.0.1"
            assert header(head, b"content-length") == b"0"
    run(go())


def test_chunked_body_and_connection_close() -> None:
    async def chunked_then_close(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 503 X\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                     b"5\r\n{\"a\":\r\n3\r\n 1}\r\n0\r\n\r\n")
        await writer.drain()
        return False

    async def go() -> None:
        async with Server(chunked_then_close) as server:
            client = HttpClient()
            try:
                first = await client.get(server.url + "/")
                second = await client.get(server.url + "/")
            finally:
                await client.aclose()
            assert first.status_code == 503 and first.json() == {"a": 1}
            assert second.json() == {"a": 1}
            assert server.connections == 2, "a `Connection: close` answer is not reused"
    run(go())


def test_idle_connection_closed_by_the_server_is_replaced() -> None:
    async def answer_then_close_soon(head: bytes, body: bytes,
                                     writer: asyncio.StreamWriter) -> bool:
        writer.write(answer(200, b"{}"))  # keep-alive by HTTP/1.1 default...
        await writer.drain()
        return False  # ...but the server closes it right after (as uvicorn does when idle)

    async def go() -> None:
        async with Server(answer_then_close_soon) as server:
            client = HttpClient()
            try:
                assert (await client.get(server.url + "/")).status_code == 200
                await asyncio.sleep(0.2)  # the FIN arrives while the connection is idle
                assert (await client.get(server.url + "/")).status_code == 200
            finally:
                await client.aclose()
            assert server.connections == 2
    run(go())


def test_timeout_raises_and_the_connection_is_not_reused() -> None:
    calls = {"n": 0}

    async def first_hangs(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> bool:
        calls["n"] += 1
        if calls["n"] == 1:
            await asyncio.sleep(5)
        writer.write(answer(200, b'{"late": false}'))
        await writer.drain()
        return True

    async def go() -> None:
        async with Server(first_hangs) as server:
            client = HttpClient()
            try:
                with pytest.raises(Timeout):
                    await client.get(server.url + "/", timeout=0.3)
                after = await client.get(server.url + "/", timeout=2.0)
            finally:
                await client.aclose()
            # The late answer to the first request must never be read as the second's.
            assert after.json() == {"late": False}
            assert server.connections == 2
    run(go())


def test_refused_connection_is_a_transport_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens on it once closed

    async def go() -> None:
        client = HttpClient()
        try:
            with pytest.raises(TransportError) as info:
                await client.get(f"http://127.0.0.1:{port}/health", timeout=2.0)
            assert not isinstance(info.value, Timeout)
        finally:
            await client.aclose()
    run(go())


def test_server_closing_mid_response_is_a_transport_error() -> None:
    async def truncated(head: bytes, body: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 X\r\nContent-Length: 100\r\n\r\n{\"partial\"")
        await writer.drain()
        return False

    async def go() -> None:
        async with Server(truncated) as server:
            client = HttpClient()
            try:
                with pytest.raises(TransportError):
                    await client.get(server.url + "/")
            finally:
                await client.aclose()
    run(go())


def test_header_injection_is_refused_before_sending() -> None:
    async def go() -> None:
        async with Server(echo) as server:
            client = HttpClient()
            try:
                with pytest.raises(ValueError):
                    await client.get(server.url + "/", headers={"X-A": "b\r\nX-Evil: 1"})
            finally:
                await client.aclose()
            assert server.requests == []
    run(go())

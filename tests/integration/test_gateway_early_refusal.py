"""The gateway refuses in its HTTP protocol (shop/shed_protocol.py, SHOP_EARLY_SHED=1, the
default) with exactly the answer the ASGI middleware gives (SHOP_EARLY_SHED=0), and the
connection stays usable: a refused request's body is read and dropped, the next request on
the same connection (also pipelined in the same write) is answered, `Connection: close` and
HEAD are honoured, and load_shed_total counts every refusal.

Two real gateway processes, each with one slot (SHOP_ADAPTIVE_LIMIT=0, SHOP_MAX_INFLIGHT=1)
held by an order sent to an "orders" that accepts connections and never answers; raw
sockets, so what is checked is the bytes on the wire."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from tests.integration.shopclient import order_body
from tests.integration.shopstack import ShopStack, metric_value
from tests.support import wait_for


def _request(method: str, path: str, port: int, body: bytes = b"",
             extra: str = "") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}"
    if body or method == "POST":
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


def _order(port: int, extra: str = "") -> bytes:
    return _request("POST", "/orders", port, json.dumps(order_body("early-1", "SKU-001")).encode(),
                    extra)


class Wire:
    """One client connection; reads whole responses (Content-Length framed)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def response(self, head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            assert chunk, f"connection closed before a response; got {self.buf!r}"
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        status_line, *lines = head.decode().split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = 0 if head_only else int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            chunk = self.sock.recv(65536)
            assert chunk, "connection closed inside a body"
            self.buf += chunk
        body, self.buf = self.buf[:length], self.buf[length:]
        return int(status_line.split()[1]), headers, body

    def closed_by_server(self) -> bool:
        self.sock.settimeout(5)
        return self.sock.recv(1) == b""

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def gateways(stack: ShopStack) -> Iterator[dict[str, int]]:
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(16)  # completes handshakes; nothing ever answers
    procs, ports, holders = [], {}, []
    try:
        for early in ("1", "0"):
            env = {"SHOP_ADAPTIVE_LIMIT": "0", "SHOP_MAX_INFLIGHT": "1",
                   "SHOP_EARLY_SHED": early, "SHOP_RETRIES": "0",
                   "SHOP_ORDERS_URL": f"http://127.0.0.1:{hole.getsockname()[1]}"}
            proc, port = stack.spawn("gateway", env=env, tag=f"gateway-early{early}")
            procs.append(proc)
            holder = Wire(port)
            holder.send(_order(port))  # takes the one slot, held until orders' timeout
            holders.append(holder)
            wait_for(lambda port=port: metric_value(
                stack.metrics_text("gateway", port=port), "downstream_requests_total",
                to_service="orders") == 1, timeout=10, what="the held order to be forwarded")
            ports["early" if early == "1" else "asgi"] = port
        yield ports
    finally:
        for holder in holders:
            holder.close()
        for proc in procs:
            proc.stop()
        hole.close()


def _without_date(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k != "date"}


def test_a_refusal_in_the_protocol_is_the_middlewares_429_and_keeps_the_connection(
        stack: ShopStack, gateways: dict[str, int]) -> None:
    seen = {}
    for name, port in gateways.items():
        wire = Wire(port)
        try:
            wire.send(_order(port))
            status, headers, body = wire.response()
            assert status == 429, (name, status, body)
            assert headers["retry-after"] == "5"
            assert json.loads(body)["error"] == "overloaded"
            seen[name] = (status, _without_date(headers), body)
            # Same connection: its body was read, the next request is answered.
            wire.send(_request("GET", "/health", port))
            status, _, body = wire.response()
            assert status == 200, body
            # Pipelined in one write: a refused order, then health, answered in order.
            wire.send(_order(port) + _request("GET", "/health", port))
            assert wire.response()[0] == 429
            assert wire.response()[0] == 200
            # 300 pipelined in one write, answers read only afterwards: all answered, in
            # order (a client not reading its answers gets uvicorn's back-pressure).
            wire.send(_order(port) * 300 + _request("GET", "/health", port))
            assert [wire.response()[0] for _ in range(301)] == [429] * 300 + [200]
            # HEAD: refused without a body (the middleware's path answers it).
            wire.send(_request("HEAD", "/orders", port))
            status, headers, _ = wire.response(head_only=True)
            assert status == 429
            # Connection: close is honoured after the refusal.
            wire.send(_order(port, extra="Connection: close\r\n"))
            assert wire.response()[0] == 429
            assert wire.closed_by_server()
        finally:
            wire.close()
        text = stack.metrics_text("gateway", port=port)
        assert metric_value(text, "load_shed_total") == 304, name
        # Refused requests never reached orders: only the held one was forwarded.
        assert metric_value(text, "downstream_requests_total", to_service="orders") == 1
    assert seen["early"] == seen["asgi"]  # the same bytes on the wire, but the Date

"""HTTP to the stack: never through a proxy, never off this machine.

Two transports:

- `get` / `http_get`: one GET on a fresh connection, HTTP/1.0 over a plain socket (the
  server sends the body whole and closes). For probes and `chaosctl health`, which must start
  fast: CPU time of `python -c "import X"` on the 2-core machine (median of 7, loaded,
  minus the bare interpreter's), httpx ~250 ms (it also imports rich for its CLI when rich is
  installed), http.client ~40 ms, socket ~15 ms. A fresh connection per call is also what
  spreads readiness probes over the replicas that share a port.
- `http_client` / `async_http_client`: httpx clients for everything else (keep-alive,
  concurrency, POST bodies). httpx is imported inside them, so a command that never builds
  one (`stack status`, `playbooks list`) does not pay for it.

`trust_env=False` for httpx, and the socket transport reads no proxy variables: an
`http_proxy` in the user's environment must not see (or break) traffic to 127.0.0.1. Every
request passes a loopback check, whatever URL it was built from, so a wrong base URL fails
before anything leaves the machine.
"""

from __future__ import annotations

import json
import socket
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from chaosctl.domain import is_loopback
from chaosctl.errors import InvalidInputError

if TYPE_CHECKING:
    import httpx

DEFAULT_TIMEOUT_S = 5.0


def require_loopback(url: str, what: str = "target") -> str:
    """`url` itself when its host is this machine; InvalidInputError (exit 2) otherwise."""
    host = urlsplit(url).hostname or ""
    if not is_loopback(host):
        raise InvalidInputError(f"{what} {url!r} is not a loopback address",
                                hint="chaosctl only talks to 127.0.0.1 / localhost")
    return url


# -- one GET over a socket ---------------------------------------------------------------------


class HttpAnswerError(Exception):
    """What came back is not a complete HTTP answer."""


class HttpAnswer:
    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        self.body = body

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not."""
        return json.loads(self.body)


MAX_ANSWER_BYTES = 8 << 20  # /health and the targets list are kilobytes; stop a runaway one
# What `get` raises when nothing usable came back (TimeoutError and refusals are OSErrors).
GET_ERRORS = (OSError, HttpAnswerError)


def get(url: str, timeout: float) -> HttpAnswer:
    """GET `url` within `timeout` seconds in all; one of GET_ERRORS when that fails.

    HTTP/1.0, so the server sends the body whole (no chunks) and closes: read to the end.
    """
    parts = urlsplit(require_loopback(url, "request to"))
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    deadline = time.monotonic() + timeout
    request = (f"GET {path} HTTP/1.0\r\nHost: {parts.netloc}\r\n"
               "Accept: application/json\r\n\r\n").encode()
    chunks: list[bytes] = []
    size = 0
    # A bytes host: a str one makes getaddrinfo import the idna codec (~5 ms) to encode it.
    address = ((parts.hostname or "").encode(), parts.port or 80)
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(request)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("timed out")
            sock.settimeout(left)
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
            size += len(data)
            if size > MAX_ANSWER_BYTES:
                raise HttpAnswerError(f"answer longer than {MAX_ANSWER_BYTES} bytes")
    return parse_http_answer(b"".join(chunks))


def parse_http_answer(raw: bytes) -> HttpAnswer:
    """Status and body of a whole HTTP/1.x answer; HttpAnswerError for anything else."""
    if not raw:
        raise HttpAnswerError("the server closed the connection without an answer")
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = lines[0].split(None, 2)
    if not sep or len(status) < 2 or not status[0].startswith(b"HTTP/") \
            or not status[1].isdigit():
        raise HttpAnswerError(f"not an HTTP answer: {raw[:40]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    if b"transfer-encoding" in headers:  # not allowed in an answer to HTTP/1.0
        raise HttpAnswerError("a chunked answer to an HTTP/1.0 request")
    length = headers.get(b"content-length")
    if length is not None and length.isdigit():
        if len(body) < int(length):
            raise HttpAnswerError(f"answer cut short ({len(body)} of {int(length)} bytes)")
        body = body[: int(length)]
    return HttpAnswer(int(status[1]), body)


def http_get(url: str, timeout: float = 1.0) -> tuple[int, bytes] | None:
    """One GET on a fresh connection: (status, body), or None when nothing answered in time."""
    try:
        answer = get(url, timeout)
    except GET_ERRORS:
        return None
    return answer.status, answer.body


# -- httpx clients -----------------------------------------------------------------------------


def _check_request(request: httpx.Request) -> None:
    require_loopback(str(request.url), "request to")


async def _check_request_async(request: httpx.Request) -> None:
    _check_request(request)


def _options(base_url: str | None, timeout: float, max_connections: int | None) -> dict[str, Any]:
    import httpx

    options: dict[str, Any] = {"timeout": timeout, "trust_env": False}
    if base_url is not None:
        options["base_url"] = require_loopback(base_url)
    if max_connections is not None:
        options["limits"] = httpx.Limits(max_connections=max_connections,
                                         max_keepalive_connections=max_connections)
    return options


def http_client(base_url: str | None = None, *, timeout: float = DEFAULT_TIMEOUT_S,
                max_connections: int | None = None) -> httpx.Client:
    """A synchronous client (use it as a context manager to close its connections)."""
    import httpx  # here, not at module level: see the module docstring

    return httpx.Client(**_options(base_url, timeout, max_connections),
                        event_hooks={"request": [_check_request]})


def async_http_client(base_url: str | None = None, *, timeout: float = DEFAULT_TIMEOUT_S,
                      max_connections: int | None = None) -> httpx.AsyncClient:
    """An asyncio client (`async with async_http_client(...) as client:`)."""
    import httpx  # here, not at module level: see the module docstring

    return httpx.AsyncClient(**_options(base_url, timeout, max_connections),
                             event_hooks={"request": [_check_request_async]})


def http_post(url: str, *, timeout: float = DEFAULT_TIMEOUT_S, **kwargs: Any) -> httpx.Response:
    """One POST on a fresh connection; httpx errors propagate for the caller to classify."""
    with http_client(timeout=timeout) as client:
        return client.post(url, **kwargs)

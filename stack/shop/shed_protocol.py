"""The gateway's HTTP protocol: uvicorn's httptools protocol, with load shedding decided as
soon as a request's headers are parsed, before uvicorn builds anything for the app.

Under overload most requests are refusals, and through the ASGI app each one still cost
uvicorn's request cycle, an asyncio task and two `send` calls: ~140 us of the gateway's CPU
per refusal on the benchmark machine, against ~55 us here (the parse, one check, one write).
At 10x capacity that difference was a quarter of the stack's only CPU (issue 13).

The check is `LoadShedMiddleware.refuse_now` and the answer is the middleware's own 429
(same status, headers, body; uvicorn's default headers first, as uvicorn writes them). Only
the plain case takes the shortcut: an HTTP/1.1 keep-alive request that is not HEAD, has no
`Expect: 100-continue`, no upgrade, no earlier request of the same connection still being
answered, on a connection whose client is reading its answers (a client that pipelines
requests without reading gets uvicorn's own back-pressure, not an ever-growing buffer).
Everything else, and every request the check would admit, goes through uvicorn unchanged,
and the middleware decides again as before. A refused request's body is read and dropped,
so the connection stays usable.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from shop.resilience import LoadShedMiddleware

STATUS_429 = b"HTTP/1.1 429 Too Many Requests\r\n"


def http_protocol(app: Any, http: str) -> Any:
    """What to give uvicorn's `http=`: the shedding protocol for a LoadShedMiddleware app on
    httptools ("auto" or "httptools", when installed), else `http` unchanged."""
    if not isinstance(app, LoadShedMiddleware) or http not in ("auto", "httptools"):
        return http
    try:
        import httptools
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return http
    return _protocol_class(app, HttpToolsProtocol, httptools.parse_url)


def _protocol_class(shed: LoadShedMiddleware, base: type, parse_url: Any) -> type:
    tail = b"".join(name + b": " + value + b"\r\n" for name, value in shed.headers)
    tail += b"\r\n" + shed.body

    def path_of(url: bytes) -> str | None:
        try:
            path = parse_url(url).path.decode("ascii")
        except (ValueError, UnicodeDecodeError, AttributeError):
            return None  # uvicorn's own parse reports it
        return unquote(path) if "%" in path else path

    class ShedProtocol(base):  # type: ignore[misc, valid-type]
        _refusing = False

        def on_headers_complete(self) -> None:
            parser = self.parser
            cycle = self.cycle
            if ((cycle is None or cycle.response_complete) and not self.pipeline
                    and not self.flow.write_paused and not self.expect_100_continue
                    and parser.get_http_version() == "1.1" and parser.should_keep_alive()
                    and not parser.should_upgrade() and parser.get_method() != b"HEAD"):
                path = path_of(self.url)
                if path is not None and shed.refuse_now(path):
                    self._refusing = True
                    defaults = b"".join(name + b": " + value + b"\r\n"
                                        for name, value in self.server_state.default_headers)
                    self.transport.write(STATUS_429 + defaults + tail)
                    return
            super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            if not self._refusing:
                super().on_body(body)

        def on_message_complete(self) -> None:
            if self._refusing:
                # Answered and its body read: the connection takes the next request, exactly
                # as after a response uvicorn wrote (keep-alive timer, resumed reading).
                self._refusing = False
                self.on_response_complete()
                return
            super().on_message_complete()

    return ShedProtocol

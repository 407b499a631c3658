"""What every service shares: the app factory, /health, /metrics, request metrics, body limit,
deadline propagation, admin auth, and JSON errors without tracebacks."""

from __future__ import annotations

import inspect
import json
import os
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BeforeValidator
from starlette.exceptions import HTTPException as StarletteHTTPException

from shop import metrics
from shop.looplag import LoopLag
from shop.openapi_errors import document_errors
from shop.resilience import DEADLINE_HEADER, Deadline
from shop.settings import ShopSettings

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
HealthCheck = Callable[[], Awaitable[tuple[str, dict[str, Any]]]]
WRITE_METHODS = {"POST", "PUT", "PATCH"}
# PostgreSQL text cannot hold NUL: a value with one must be a 422, not a failed query (500).
NO_NUL = r"^[^\x00]*$"


def _refuse_bool(value: Any) -> Any:
    # Lax parsing reads `true` as 1: an order line, a charge or a reservation nobody asked
    # for. (A decimal string stays accepted: the study's client sends prices as "57.23".)
    if isinstance(value, bool):
        raise ValueError("must be a number, not true/false")
    return value


# Shared field types of the services' request models. NUL is refused because PostgreSQL
# cannot store it (a 500 otherwise); booleans are refused where a number is meant.
NotBool = BeforeValidator(_refuse_bool)
IdPath = Annotated[str, Path(pattern=NO_NUL, max_length=255)]
TextQuery = Annotated[str | None, Query(pattern=NO_NUL, max_length=64)]


# Header values that go on downstream (the gateway forwards both, orders the correlation id):
# visible ASCII only, because an HTTP client (rightly) refuses to encode anything else into a
# request header, and orders stores them in bounded columns.
VISIBLE_ASCII = r"^[!-~]+$"
IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", min_length=1, max_length=255, pattern=VISIBLE_ASCII,
    description="Makes the POST safe to retry: the same key never yields a second order")]
CorrelationId = Annotated[str | None, Header(
    alias="X-Correlation-ID", min_length=1, max_length=128, pattern=VISIBLE_ASCII,
    description="Traces the request through every service; minted when absent")]
# The same two rules for the fast lane (FastLane below): (header name, max length).
IDEMPOTENCY_HEADER = (b"idempotency-key", 255)
CORRELATION_HEADER = (b"x-correlation-id", 128)
_VISIBLE = re.compile(r"[!-~]+")

# Starlette's JSONResponse.render calls json.dumps with non-default options, which builds a
# JSONEncoder per response; one encoder with the same options writes the same bytes.
_JSON_ENCODE = json.JSONEncoder(ensure_ascii=False, allow_nan=False, indent=None,
                                separators=(",", ":")).encode


class JsonAnswer(JSONResponse):
    """JSONResponse with the same bytes, from one encoder built once."""

    def render(self, content: Any) -> bytes:
        return _JSON_ENCODE(content).encode("utf-8")


class ApiError(Exception):
    """Raised by handlers to answer with a JSON error and a status code."""

    def __init__(self, status: int, error: str, detail: str, headers: dict | None = None):
        super().__init__(detail)
        self.status, self.error, self.detail, self.headers = status, error, detail, headers


class ServiceMiddleware:
    """The shared per-request rules of every service, in this order, in one layer:

    - request metrics: http_requests_total and latency by route template (bounded label
      cardinality), for every answer including the refusals below;
    - deadline: a request whose X-Deadline has already passed gets 504 at once, no work;
    - JSON writes: a write that carries a body must say it is JSON, or it gets 415 before any
      work. Browsers send text/plain and form bodies cross-site without a CORS preflight;
      refusing them (FastAPI would otherwise parse any body as JSON) means a page on another
      origin cannot place orders or change chaos. A write without a body (a breaker reset,
      the study's `POST /chaos/config?error_rate=0.2`) needs no Content-Type;
    - body limit: bodies over the limit get 413 before the app reads them into memory. With
      a Content-Length the check is up front (the server enforces that framing). A chunked
      body has none, so it is read here, at most `max_bytes` of it, and replayed to the app:
      an error raised from inside the app's body read would reach the client as FastAPI's
      generic 400 "error parsing the body" instead of 413;
    - the fast lane (FastLane below) for the routes registered with it.

    One layer instead of five: each was a coroutine frame, a scan of the headers and (for the
    metrics) a wrapper around every send; together ~13 % of a payments or inventory request's
    CPU (issue 13, third pass).
    """

    def __init__(self, app, service: str, max_bytes: int, lane: FastLane,  # noqa: ANN001
                 loop_lag: LoopLag | None = None) -> None:
        self.app, self.service, self.max_bytes, self.lane = app, service, max_bytes, lane
        # Every answer but the gateway's says how much this service queues (shop.looplag).
        self.loop_lag = loop_lag
        # The metric children per (method, route, code), looked up once: `.labels()` took a
        # lock and built a key on every request.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        lag = self.loop_lag
        if lag is not None:
            lag.start()
        status = _Status(send, lag)
        try:
            await self._serve(scope, receive, status)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            if path != "/metrics":
                key = (scope.get("method", "GET"), path, status.code)
                children = self._children.get(key)
                if children is None:  # bounded: route templates x methods x status codes
                    method, code = key[0], str(key[2])
                    children = self._children[key] = (
                        metrics.http_requests_total.labels(self.service, method, path, code),
                        metrics.http_request_duration_seconds.labels(self.service, method,
                                                                     path))
                children[0].inc()
                children[1].observe(time.perf_counter() - start)

    async def _serve(self, scope, receive, status: _Status) -> None:  # noqa: ANN001
        first_length = last_length = content_type = None
        chunked = expired = deadline_seen = False
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                if first_length is None:
                    first_length = value
                last_length = value
            elif name == b"content-type":
                content_type = value
            elif name == b"transfer-encoding":
                chunked = True
            elif name == _DEADLINE_NAME:
                deadline = Deadline.from_header(value.decode("latin-1"), 60.0)
                if deadline.expired():
                    expired = True
                elif not deadline_seen and _deadline_given(value):
                    # The first X-Deadline is the one deadline_of means: it reads it from here.
                    scope["shop.deadline"] = deadline
                deadline_seen = True
        if expired:
            await _send_json(status, 504, {"error": "deadline_exceeded",
                                           "detail": "the caller's deadline passed"})
            return
        if scope.get("method") in WRITE_METHODS:
            has_body = ((last_length or b"0").strip() not in (b"0", b"")) or chunked
            media = (content_type or b"").decode("latin-1")
            if has_body and not is_json_content_type(media):
                got = f"got {media!r}" if media else "no Content-Type was sent"
                await _send_json(status, 415, {
                    "error": "unsupported_media_type",
                    "detail": f"send the body as JSON with 'Content-Type: application/json' "
                              f"({got})"})
                return
        too_large = None
        if first_length is not None:
            if first_length.isdigit() and int(first_length) > self.max_bytes:
                too_large = True
        else:
            chunks: list[bytes] = []
            seen = 0
            while True:
                message = await receive()
                if message["type"] != "http.request":  # the client went away
                    await self._inner(scope, _replay([message], receive), status)
                    return
                chunk = message.get("body", b"")
                seen += len(chunk)
                if seen > self.max_bytes:
                    too_large = True
                    break
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
            if not too_large:
                body = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
                receive = _replay([body], receive)
        if too_large:
            await _send_json(status, 413, {"error": "payload_too_large",
                                           "detail": f"body over {self.max_bytes} bytes"})
            return
        await self._inner(scope, receive, status)

    async def _inner(self, scope, receive, status: _Status) -> None:  # noqa: ANN001
        if not await self.lane.serve(scope, receive, status, self.app):
            await self.app(scope, receive, status)


_DEADLINE_NAME = DEADLINE_HEADER.lower().encode()


def _deadline_given(value: bytes) -> bool:
    """The header holds a deadline (not junk that Deadline.from_header replaces by its
    default budget): only then may deadline_of take the parsed one."""
    text = value.strip()
    return text.isdigit() and 0 < len(text) <= 15 and int(text) > 0


class _Status:
    """The ASGI send of one request, remembering the status it answered with (500 until a
    response starts). The fast lane sets `code` itself and sends on `send` directly."""

    __slots__ = ("code", "send", "lag")

    def __init__(self, send, lag: LoopLag | None = None) -> None:  # noqa: ANN001
        self.code, self.send, self.lag = 500, send, lag

    async def __call__(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            self.code = message["status"]
            if self.lag is not None:
                message = {**message, "headers": [*message.get("headers", ()),
                                                  self.lag.header]}
        await self.send(message)


def _replay(messages: list[dict], receive):  # noqa: ANN001, ANN202
    """A receive() that first returns `messages`, then defers to the real one."""
    pending = list(messages)

    async def replayed():  # noqa: ANN202
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


def is_json_content_type(value: str) -> bool:
    """application/json, optionally with charset=utf-8 (the only charset JSON allows)."""
    media, *params = value.split(";")
    if media.strip().lower() != "application/json":
        return False
    for param in params:
        name, _, arg = param.partition("=")
        if name.strip().lower() == "charset" and arg.strip().strip('"').lower() not in (
                "utf-8", "utf8"):
            return False
    return True


class FastLane:
    """The hot routes (an order and the calls it makes) without FastAPI's per-request work.

    FastAPI's routing, dependency solving and exception wrappers cost ~150 us of CPU per
    request on the 2-core box, more than the handlers themselves (issue 13's profile). For a
    route registered here (`fast_route`) a request whose body is valid JSON that the route's
    model accepts, and whose headers pass the same rules as the route's header types, is
    answered by calling the endpoint directly. Anything else (bad JSON, a validation error,
    a repeated or invalid header, a client gone mid-body) goes to FastAPI unchanged with the
    body replayed, so every error answer is FastAPI's own. It sits inside the shared
    middleware (metrics, deadline, JSON check, body limit) and the gateway's load shedding,
    so those apply to both paths alike; an ApiError becomes the same JSON error as the app's
    handler, any other exception propagates to the app's 500 handler as before.
    """

    def __init__(self) -> None:
        # (method, path) -> (route, model, endpoint, header rules by header name, wants the
        # Request)
        self.routes: dict[tuple[str, str], tuple[Any, Any, Any, dict, bool]] = {}

    def add(self, app: FastAPI, method: str, path: str, endpoint: Callable[..., Any],
            model: Any, headers: dict[str, tuple[bytes, int]] | None = None) -> None:
        route = next((r for r in app.router.routes if getattr(r, "path", None) == path
                      and method in getattr(r, "methods", ())), None)
        if route is None:
            raise ValueError(f"declare {method} {path} on the app before adding it to the lane")
        params = inspect.signature(endpoint).parameters
        rules = dict(headers or {})
        if not set(rules) <= set(params):
            raise TypeError(f"{path}: header parameters {set(rules) - set(params)} unknown")
        by_name = {name: (param, max_len) for param, (name, max_len) in rules.items()}
        self.routes[(method, path)] = (route, model, endpoint, by_name, "request" in params)

    @staticmethod
    def _headers(raw: list, by_name: dict[bytes, tuple[str, int]]
                 ) -> dict[str, str | None] | None:
        """The header arguments, or None when FastAPI must decide (invalid or repeated).
        One pass over the headers for all the route's rules."""
        found: dict[str, str | None] = {param: None for param, _ in by_name.values()}
        for name, raw_value in raw:
            rule = by_name.get(name.lower())
            if rule is None:
                continue
            param, max_len = rule
            if found[param] is not None:  # repeated
                return None
            value = raw_value.decode("latin-1")
            if len(value) > max_len or not _VISIBLE.fullmatch(value):
                return None
            found[param] = value
        return found

    async def serve(self, scope, receive, send, app) -> bool:  # noqa: ANN001
        """Answer a fast-lane request; False when it is not one (nothing was read)."""
        entry = self.routes.get((scope.get("method"), scope.get("path")))
        if entry is None:
            return False
        route, model, endpoint, by_name, wants_request = entry
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await app(scope, _replay([message], receive), send)
                return True
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        kwargs = self._headers(scope.get("headers", []), by_name)
        parsed = None
        if kwargs is not None:
            try:
                # From the bytes with pydantic's own JSON parser: 2-3x less CPU than json.loads
                # and model_validate (issue 13, third pass). It accepts no body that those two
                # refuse (tests/unit/test_shop_fast_lane_parse.py); what it refuses (a BOM,
                # UTF-16, anything invalid) goes to FastAPI, which answers as it always did.
                parsed = model.model_validate_json(body)
            except Exception:  # noqa: BLE001 - FastAPI answers it, with its own 422
                parsed = None
        if parsed is None:
            replay = {"type": "http.request", "body": body, "more_body": False}
            await app(scope, _replay([replay], receive), send)
            return True
        scope["route"], scope["endpoint"] = route, endpoint
        scope.setdefault("path_params", {})
        if wants_request:  # the body stays readable through it, as under FastAPI
            replay = {"type": "http.request", "body": body, "more_body": False}
            kwargs["request"] = Request(scope, _replay([replay], receive))
        try:
            response = await endpoint(parsed, **kwargs)
        except ApiError as exc:
            response = api_error_response(exc)
        except StarletteHTTPException as exc:
            response = http_error_response(exc)
        if isinstance(send, _Status):  # known status: no wrapper around the two sends
            send.code = response.status_code
            if send.lag is not None:
                response.raw_headers.append(send.lag.header)
            send = send.send
        await response(scope, receive, send)
        return True


def fast_route(app: FastAPI, method: str, path: str, endpoint: Callable[..., Any], model: Any,
               headers: dict[str, tuple[bytes, int]] | None = None) -> None:
    """Serve an already declared route through the fast lane (see FastLane)."""
    app.state.fast_lane.add(app, method, path, endpoint, model, headers)


def api_error_response(exc: ApiError) -> JSONResponse:
    return JsonAnswer({"error": exc.error, "detail": exc.detail}, exc.status,
                        headers=exc.headers)


def http_error_response(exc: StarletteHTTPException) -> JSONResponse:
    return JSONResponse({"error": "http_error", "detail": str(exc.detail)}, exc.status_code)


async def _send_json(send, status: int, body: dict, headers: dict | None = None) -> None:  # noqa: ANN001
    payload = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw += [(k.lower().encode(), str(v).encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})


def deadline_of(request: Request, settings: ShopSettings) -> Deadline:
    """The request's deadline: the caller's X-Deadline, or now + this service's budget."""
    given = request.scope.get("shop.deadline")  # parsed by ServiceMiddleware
    if given is not None:
        return given
    return Deadline.from_header(request.headers.get(DEADLINE_HEADER), settings.request_budget_s)


def require_loopback_host(request: Request) -> None:
    """403 unless the Host header names this machine: a DNS-rebinding page sends its own
    host name, so it cannot reach admin endpoints through the victim's browser."""
    raw = request.headers.get("host") or ""
    host = raw[1:].split("]")[0] if raw.startswith("[") else raw.split(":")[0]
    if host.lower() not in LOOPBACK_HOSTS:
        raise ApiError(403, "forbidden",
                       "admin endpoints answer only on a loopback Host (127.0.0.1, localhost "
                       "or [::1]); call them from this machine")


def _supplied_token(request: Request) -> str:
    supplied = request.headers.get("x-admin-token") or ""
    auth = request.headers.get("authorization") or ""
    if auth.lower().startswith("bearer "):
        supplied = auth[7:].strip()
    return supplied


def require_admin(request: Request, settings: ShopSettings, *,
                  token_optional: bool = False) -> None:
    """Admin endpoints: loopback Host only, and the admin token.

    `token_optional` is for writes that only make things safer (clearing chaos): a loopback
    Host suffices, as the runbook's `curl -X DELETE` loop sends no token; a token that is
    sent must still be the right one.
    """
    require_loopback_host(request)
    supplied = _supplied_token(request)
    if token_optional and not supplied:
        return
    expected = settings.admin_token
    # Compared as bytes: compare_digest refuses non-ASCII str (a header can carry latin-1).
    if (not expected or not supplied
            or not secrets.compare_digest(supplied.encode(), expected.encode())):
        raise ApiError(
            401, "unauthorized",
            "admin token required: send 'Authorization: Bearer <token>' "
            "(the token is in $CHAOSCTL_HOME/admin_token)",
        )


# FastAPI's native OpenTelemetry (newer releases) checks the global providers on every
# request, reading the environment each time; the stack exports Prometheus metrics instead.
_NO_TELEMETRY: dict[str, Any] = (
    {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters else {})


def create_app(settings: ShopSettings, health: HealthCheck, lifespan=None,  # noqa: ANN001
               every_route_errors: tuple[int, ...] = ()) -> FastAPI:
    """The service's app with the shared endpoints and middleware. Every service but the
    gateway (whose callers are the shop's clients) reports its event loop lag on its answers.

    `every_route_errors` are statuses a service-wide middleware may answer on any route but
    /health and /metrics (the gateway's 429 from load shedding); they go into the OpenAPI.
    """
    metrics.init_labels(settings.service)  # every series a rule reads exists at 0 from start-up
    # FastAPI's own strict Content-Type check stays on; JsonWritesMiddleware answers 415 first.
    app = FastAPI(title=f"shop {settings.service}", lifespan=lifespan, docs_url=None,
                  redoc_url=None, **_NO_TELEMETRY)
    _install_openapi(app, every_route_errors)

    @app.exception_handler(ApiError)
    async def _api_error(_req: Request, exc: ApiError) -> JSONResponse:
        return api_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_req: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": ".".join(str(p) for p in err.get("loc", ()) if p != "body"),
             "message": err.get("msg", "invalid")}
            for err in exc.errors()
        ]
        return JSONResponse({"error": "invalid_request", "detail": problems}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
        return http_error_response(exc)

    @app.exception_handler(Exception)
    async def _unexpected(_req: Request, _exc: Exception) -> JSONResponse:
        # Never leak a traceback or a secret: the log has the details.
        return JSONResponse({"error": "internal", "detail": "internal error; see the log"}, 500)

    @app.get("/health", responses={503: {"description": "The service is down"}})
    async def _health() -> JSONResponse:
        try:
            status, deps = await health()
        except Exception as exc:  # noqa: BLE001
            status, deps = "down", {"error": type(exc).__name__}
        body = {"status": status, "service": settings.service, "pid": os.getpid(),
                "replica": settings.replica, "dependencies": deps}
        return JSONResponse(body, 200 if status != "down" else 503)

    @app.get("/metrics", response_class=PlainTextResponse)
    async def _metrics() -> Response:
        payload, content_type = metrics.render()
        return Response(payload, media_type=content_type)

    app.state.fast_lane = FastLane()
    app.add_middleware(ServiceMiddleware, service=settings.service,
                       max_bytes=settings.max_body_bytes, lane=app.state.fast_lane,
                       loop_lag=None if settings.service == "gateway"
                       else LoopLag(settings.service))
    return app


def _install_openapi(app: FastAPI, every_route_errors: tuple[int, ...]) -> None:
    """Generate the schema once, then add the error responses every route can give."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            app.openapi_schema = document_errors(schema, every_route_errors)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def redis_client(url: str):  # noqa: ANN201
    """An asyncio Redis client whose pool makes a burst WAIT for a connection.

    redis-py's default async pool raises MaxConnectionsError past 100 connections, which
    turned a burst of 500 requests into 400 spurious 503s; a blocking pool queues them
    briefly (bounded by `timeout`) instead.
    """
    import redis.asyncio as aioredis

    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=64, timeout=2.0, socket_timeout=1.0, socket_connect_timeout=1.0)
    return aioredis.Redis.from_pool(pool)


async def check_redis(client) -> str:  # noqa: ANN001
    try:
        await client.ping()
        return "ok"
    except Exception:  # noqa: BLE001
        return "down"

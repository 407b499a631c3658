"""What every service shares: the app factory, /health, /metrics, request metrics, body limit,
deadline propagation, admin auth, and JSON errors without tracebacks."""

from __future__ import annotations

import inspect
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from shop import metrics
from shop.resilience import DEADLINE_HEADER, Deadline
from shop.settings import ShopSettings

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
HealthCheck = Callable[[], Awaitable[tuple[str, dict[str, Any]]]]


class ApiError(Exception):
    """Raised by handlers to answer with a JSON error and a status code."""

    def __init__(self, status: int, error: str, detail: str, headers: dict | None = None):
        super().__init__(detail)
        self.status, self.error, self.detail, self.headers = status, error, detail, headers


class BodyLimitMiddleware:
    """Refuse bodies over the limit with 413 before the app reads them into memory.

    With a Content-Length the check is up front (the server enforces that framing). A chunked
    body has none, so it is read here, at most `max_bytes` of it, and replayed to the app: an
    error raised from inside the app's body read would reach the client as FastAPI's generic
    400 "error parsing the body" instead of 413.
    """

    def __init__(self, app, max_bytes: int) -> None:  # noqa: ANN001
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = {"error": "payload_too_large", "detail": f"body over {self.max_bytes} bytes"}
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                if value.isdigit() and int(value) > self.max_bytes:
                    await _send_json(send, 413, too_large)
                    return
                await self.app(scope, receive, send)
                return
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay([message], receive), send)
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_bytes:
                await _send_json(send, 413, too_large)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([body], receive), send)


def _replay(messages: list[dict], receive):  # noqa: ANN001, ANN202
    """A receive() that first returns `messages`, then defers to the real one."""
    pending = list(messages)

    async def replayed():  # noqa: ANN202
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


class DeadlineMiddleware:
    """A request whose X-Deadline has already passed gets 504 at once: no work past it."""

    def __init__(self, app) -> None:  # noqa: ANN001
        self.app = app

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] == "http":
            for name, value in scope.get("headers", []):
                if name == DEADLINE_HEADER.lower().encode():
                    deadline = Deadline.from_header(value.decode("latin-1"), 60.0)
                    if deadline.expired():
                        await _send_json(send, 504, {"error": "deadline_exceeded",
                                                     "detail": "the caller's deadline passed"})
                        return
        await self.app(scope, receive, send)


class RequestMetricsMiddleware:
    """http_requests_total and latency by route template (bounded label cardinality)."""

    def __init__(self, app, service: str) -> None:  # noqa: ANN001
        self.app, self.service = app, service

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def capture(message):  # noqa: ANN001, ANN202
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            if path != "/metrics":
                method = scope.get("method", "GET")
                metrics.http_requests_total.labels(
                    self.service, method, path, str(status["code"])
                ).inc()
                metrics.http_request_duration_seconds.labels(self.service, method, path).observe(
                    time.perf_counter() - start
                )


async def _send_json(send, status: int, body: dict, headers: dict | None = None) -> None:  # noqa: ANN001
    import json

    payload = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw += [(k.lower().encode(), str(v).encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})


def deadline_of(request: Request, settings: ShopSettings) -> Deadline:
    """The request's deadline: the caller's X-Deadline, or now + this service's budget."""
    return Deadline.from_header(request.headers.get(DEADLINE_HEADER), settings.request_budget_s)


def require_admin(request: Request, settings: ShopSettings) -> None:
    """Admin endpoints: loopback Host only, and the admin token."""
    raw = request.headers.get("host") or ""
    host = raw[1:].split("]")[0] if raw.startswith("[") else raw.split(":")[0]
    if host not in LOOPBACK_HOSTS:
        raise ApiError(403, "forbidden", "admin endpoints answer only on a loopback Host")
    supplied = request.headers.get("x-admin-token") or ""
    auth = request.headers.get("authorization") or ""
    if auth.lower().startswith("bearer "):
        supplied = auth[7:].strip()
    expected = settings.admin_token
    if not expected or not supplied or not secrets.compare_digest(supplied, expected):
        raise ApiError(
            401, "unauthorized",
            "admin token required: send 'Authorization: Bearer <token>' "
            "(the token is in $CHAOSCTL_HOME/admin_token)",
        )


def create_app(settings: ShopSettings, health: HealthCheck, lifespan=None) -> FastAPI:  # noqa: ANN001
    extra: dict[str, Any] = {}
    if "strict_content_type" in inspect.signature(FastAPI.__init__).parameters:
        # Accept JSON sent by `curl -d` without a Content-Type, as the runbook's users do.
        extra["strict_content_type"] = False
    app = FastAPI(title=f"shop {settings.service}", lifespan=lifespan, docs_url=None,
                  redoc_url=None, **extra)

    @app.exception_handler(ApiError)
    async def _api_error(_req: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": exc.error, "detail": exc.detail}, exc.status,
                            headers=exc.headers)

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
        return JSONResponse({"error": "http_error", "detail": str(exc.detail)}, exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(_req: Request, _exc: Exception) -> JSONResponse:
        # Never leak a traceback or a secret: the log has the details.
        return JSONResponse({"error": "internal", "detail": "internal error; see the log"}, 500)

    @app.get("/health")
    async def _health() -> JSONResponse:
        try:
            status, deps = await health()
        except Exception as exc:  # noqa: BLE001
            status, deps = "down", {"error": type(exc).__name__}
        body = {"status": status, "service": settings.service, "pid": os.getpid(),
                "replica": settings.replica, "dependencies": deps}
        return JSONResponse(body, 200 if status != "down" else 503)

    @app.get("/metrics")
    async def _metrics() -> Response:
        payload, content_type = metrics.render()
        return Response(payload, media_type=content_type)

    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(DeadlineMiddleware)
    app.add_middleware(RequestMetricsMiddleware, service=settings.service)
    return app


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

"""Gateway: sheds load before any work, forwards orders with a deadline, a correlation id and
an idempotency key (so its own retries are safe), and shows every breaker in one place.

Every value a client sends is re-encoded before it goes downstream (one path segment per
path value, a urlencoded query), so no value can change which resource orders looks up or
smuggle in another parameter.
"""

from __future__ import annotations

import uuid
from contextlib import asynccontextmanager
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import Path, Query, Request
from fastapi.responses import JSONResponse
from fastapi.responses import Response as StarletteResponse

from shop import metrics
from shop.downstream import Downstream
from shop.http_client import HttpClient, Response, TransportError
from shop.looplag import HEADER as LAG_HEADER
from shop.looplag import parse_ms
from shop.openapi_errors import error_responses
from shop.orders import OrderRequest
from shop.resilience import (
    AdaptiveLimit,
    AdaptiveLimitConfig,
    BreakerOpenError,
    BreakerState,
    BulkheadFullError,
    Deadline,
    DeadlineExceededError,
    DownstreamError,
    LoadShedMiddleware,
    ResilienceError,
)
from shop.settings import ShopSettings
from shop.web import (
    CORRELATION_HEADER,
    IDEMPOTENCY_HEADER,
    NO_NUL,
    ApiError,
    CorrelationId,
    IdempotencyKey,
    create_app,
    deadline_of,
    fast_route,
    require_admin,
)

# Refused here rather than forwarded: orders on PostgreSQL would fail on a NUL (a 500 that
# also counts against the gateway's breaker, so a client could open it at will).
PathValue = Annotated[str, Path(pattern=NO_NUL)]
# What orders says that the client should hear too.
PASSTHROUGH_HEADERS = ("retry-after", "x-correlation-id")
# Orders marks a replayed POST with one of these (the older name first); the gateway answers
# with both, so the study's client (X-Idempotency-Replayed) and older ones work.
REPLAY_HEADERS = ("idempotent-replayed", "x-idempotency-replayed")
FORWARD_ERRORS = error_responses(429, 502, 503, 504)


def path_segment(value: str) -> str:
    """`value` as exactly one path segment: `a?b` stays an order id (not a query), `a/b`
    cannot reach another route, and `.`/`..` are not resolved away as dot-segments."""
    quoted = quote(value, safe="")
    return quoted.replace(".", "%2E") if set(value) == {"."} else quoted


def _error_for(exc: Exception) -> ApiError:
    if isinstance(exc, BreakerOpenError):
        return ApiError(503, "breaker_open", "orders circuit breaker is open; retry later",
                        headers={"Retry-After": "5"})
    if isinstance(exc, BulkheadFullError):
        # Orders cannot take more concurrent work: that is load the gateway sheds, answered
        # like max_inflight's shedding (429, Retry-After: 5) so clients back off.
        metrics.load_shed_total.inc()
        return ApiError(429, "overloaded", "gateway is shedding load; retry after 5 s",
                        headers={"Retry-After": "5"})
    if isinstance(exc, DeadlineExceededError):
        return ApiError(504, "deadline_exceeded", "the request ran out of time")
    if isinstance(exc, DownstreamError):
        return ApiError(502 if exc.status is None else 503, "orders_unavailable",
                        f"orders failed: {exc.reason}")
    return ApiError(502, "orders_unavailable", str(exc))


def _passthrough(response: Response, *, replay_visible: bool = False) -> StarletteResponse:
    """Orders' answer as the gateway's. `replay_visible` is False when the gateway minted the
    Idempotency-Key itself: a replay of its own retry is not news to a client that sent once.

    The body goes out as orders wrote it once it parses as JSON: orders renders it with the
    same JSONResponse, so re-encoding the parsed value gave the same bytes for ~6 % of the
    gateway's CPU (issue 13).
    """
    headers = {k: v for k, v in response.headers.items() if k.lower() in PASSTHROUGH_HEADERS}
    if replay_visible and any(response.headers.get(h, "").lower() == "true"
                              for h in REPLAY_HEADERS):
        headers.update({"Idempotent-Replayed": "true", "X-Idempotency-Replayed": "true"})
    try:
        response.json()
    except ValueError:
        return JSONResponse({"error": "bad_gateway",
                             "detail": f"orders answered HTTP {response.status_code} without "
                                       f"a JSON body"}, 502)
    return StarletteResponse(response.content, response.status_code, headers=headers,
                             media_type=JSONResponse.media_type)


def build(settings: ShopSettings | None = None):  # noqa: ANN201
    settings = settings or ShopSettings.from_env("gateway")
    client = HttpClient(max_connections=400)
    orders = Downstream("orders", settings, client)
    limiter = None
    if settings.load_shedding and settings.adaptive_limit:
        limiter = AdaptiveLimit(AdaptiveLimitConfig(
            initial_limit=settings.initial_inflight, min_limit=settings.min_inflight,
            max_limit=settings.max_inflight, tolerance=settings.limit_tolerance,
            max_queue_s=settings.max_queue_s), on_change=metrics.gateway_concurrency_limit.set)
    elif settings.load_shedding:
        metrics.gateway_concurrency_limit.set(settings.max_inflight)

    @asynccontextmanager
    async def lifespan(_app):  # noqa: ANN001, ANN202
        yield
        await client.aclose()

    async def health() -> tuple[str, dict]:
        state = orders.breaker.state if settings.breakers else BreakerState.CLOSED
        deps: dict[str, Any] = {"orders_breaker": state.name.lower()}
        if limiter is not None:
            deps["concurrency"] = limiter.snapshot()
        return ("degraded" if state != BreakerState.CLOSED else "ok"), deps

    app = create_app(settings, health, lifespan,
                     every_route_errors=(429,) if settings.load_shedding else ())
    # Around the whole app (not one of its middleware), so a shed request costs nothing but
    # a counter and a 429: no FastAPI/Starlette dispatch, no routing. The limit adapts to
    # the admitted requests' latency between SHOP_MIN_INFLIGHT and SHOP_MAX_INFLIGHT, on
    # overload evidence only (SHOP_ADAPTIVE_LIMIT=0: the static SHOP_MAX_INFLIGHT).
    shed = LoadShedMiddleware(app, max_inflight=settings.max_inflight,
                              on_shed=metrics.load_shed_total.inc, limiter=limiter)

    async def forward(method: str, path: str, request: Request, correlation_id: str | None, *,
                      json: Any = None, extra: dict[str, str] | None = None,
                      replay_visible: bool = False) -> StarletteResponse:
        """`path` must already be encoded (path_segment / urlencode)."""
        headers = {"X-Correlation-ID": correlation_id or f"corr_{uuid.uuid4().hex[:16]}",
                   **(extra or {})}
        try:
            response = await orders.call(method, path, deadline=deadline_of(request, settings),
                                         json=json, headers=headers)
        except ResilienceError as exc:
            raise _error_for(exc) from exc
        if limiter is not None:  # how much orders queues: the limit's tell (shop.looplag)
            lag = parse_ms(response.headers.get(LAG_HEADER))
            if lag is not None:
                limiter.note_downstream_lag(lag)
        return _passthrough(response, replay_visible=replay_visible)

    @app.post("/orders", status_code=201, responses={
        202: {"description": "Order recorded, but it failed (status and reason say why)"},
        **error_responses(409), **FORWARD_ERRORS})
    async def create_order(body: OrderRequest, request: Request,
                           idempotency_key: IdempotencyKey = None,
                           correlation_id: CorrelationId = None) -> StarletteResponse:
        payload = body.model_dump()
        # A client without a key still gets safe gateway retries: we mint one for this request.
        extra = {"Idempotency-Key": idempotency_key or f"gw_{uuid.uuid4().hex}"}
        answer = await forward("POST", "/orders", request, correlation_id,
                               json=payload, extra=extra,
                               replay_visible=idempotency_key is not None)
        if idempotency_key is None and answer.status_code == 409:
            # Our own retry found our first attempt still running under the key we minted.
            # "Retry with the same key" means nothing to a client that sent none, and a
            # keyless resend would be a second order: the outcome is unknown, say so.
            raise ApiError(504, "deadline_exceeded",
                           "the order is still being processed and its outcome is unknown; "
                           "send an Idempotency-Key to retry safely")
        return answer

    fast_route(app, "POST", "/orders", create_order, OrderRequest,
               {"idempotency_key": IDEMPOTENCY_HEADER, "correlation_id": CORRELATION_HEADER})

    @app.get("/orders/{order_id}", responses=FORWARD_ERRORS)
    async def get_order(order_id: PathValue, request: Request,
                        correlation_id: CorrelationId = None) -> StarletteResponse:
        return await forward("GET", f"/orders/{path_segment(order_id)}", request,
                             correlation_id)

    @app.get("/orders", responses=FORWARD_ERRORS)
    async def list_orders(request: Request, limit: int = 50,
                          status: Annotated[str | None, Query(pattern=NO_NUL)] = None,
                          correlation_id: CorrelationId = None) -> StarletteResponse:
        # The same types and clamping as orders' own GET /orders: bad values are 422 here.
        query: dict[str, Any] = {"limit": max(1, min(limit, 1000))}
        if status:
            query["status"] = status
        return await forward("GET", "/orders?" + urlencode(query, quote_via=quote), request,
                             correlation_id)

    @app.get("/status/breakers")
    async def breakers() -> dict:
        result: dict[str, Any] = {"orders": {**orders.snapshot(), "owner": "gateway"}}
        try:
            response = await client.get(settings.urls["orders"] + "/status/breakers", timeout=1.0)
            result.update(response.json()["breakers"])
            error = None
        except (TransportError, ValueError, KeyError, TypeError) as exc:
            error = f"orders unreachable: {type(exc).__name__}"
        body: dict[str, Any] = {"breakers": result}
        if error:
            body["error"] = error
        return body

    @app.post("/status/breakers/{downstream}/reset", responses=error_responses(401, 403, 502))
    async def reset_breaker(downstream: PathValue, request: Request) -> JSONResponse:
        require_admin(request, settings)
        if downstream == "orders":
            orders.breaker.reset()
            orders.refresh_gauge()
            return JSONResponse({"downstream": "orders", "state": "closed"})
        token = settings.admin_token or ""
        try:
            response = await client.post(
                f"{settings.urls['orders']}/status/breakers/{path_segment(downstream)}/reset",
                headers={"Authorization": f"Bearer {token}", "Host": "127.0.0.1"},
                timeout=Deadline.after(2.0).remaining())
        except TransportError as exc:
            raise ApiError(502, "orders_unavailable", "cannot reach orders to reset") from exc
        return _passthrough(response)

    return shed if settings.load_shedding else app

"""Gateway: sheds load before any work, forwards orders with a deadline, a correlation id and
an idempotency key (so its own retries are safe), and shows every breaker in one place."""

from __future__ import annotations

import uuid
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import Request
from fastapi.responses import JSONResponse

from shop import metrics
from shop.downstream import Downstream
from shop.orders import OrderRequest
from shop.resilience import (
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
from shop.web import ApiError, create_app, deadline_of, require_admin


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


def _passthrough(response: httpx.Response) -> JSONResponse:
    headers = {k: v for k, v in response.headers.items()
               if k.lower() in ("idempotent-replayed", "retry-after", "x-correlation-id")}
    try:
        body = response.json()
    except ValueError:
        body = {"error": "bad_gateway", "detail": "orders returned a non-JSON answer"}
    return JSONResponse(body, response.status_code, headers=headers)


def build(settings: ShopSettings | None = None):  # noqa: ANN201
    settings = settings or ShopSettings.from_env("gateway")
    client = httpx.AsyncClient(limits=httpx.Limits(max_connections=400,
                                                   max_keepalive_connections=100))
    orders = Downstream("orders", settings, client)

    @asynccontextmanager
    async def lifespan(_app):  # noqa: ANN001, ANN202
        yield
        await client.aclose()

    async def health() -> tuple[str, dict]:
        state = orders.breaker.state if settings.breakers else BreakerState.CLOSED
        return ("degraded" if state != BreakerState.CLOSED else "ok"), {
            "orders_breaker": state.name.lower()}

    app = create_app(settings, health, lifespan)
    if settings.load_shedding:
        # Outermost, so a shed request costs nothing but a counter and a 429.
        app.add_middleware(LoadShedMiddleware, max_inflight=settings.max_inflight,
                           on_shed=metrics.load_shed_total.inc)

    async def forward(method: str, path: str, request: Request, *, json: Any = None,
                      retry: bool = True, extra: dict[str, str] | None = None) -> JSONResponse:
        headers = {"X-Correlation-ID": request.headers.get("x-correlation-id")
                   or f"corr_{uuid.uuid4().hex[:16]}", **(extra or {})}
        try:
            response = await orders.call(method, path, deadline=deadline_of(request, settings),
                                         json=json, headers=headers, retry=retry)
        except ResilienceError as exc:
            raise _error_for(exc) from exc
        return _passthrough(response)

    @app.post("/orders", status_code=201)
    async def create_order(body: OrderRequest, request: Request) -> JSONResponse:
        key = request.headers.get("idempotency-key")
        if key is not None and not (1 <= len(key) <= 255):
            raise ApiError(422, "invalid_request", "Idempotency-Key must be 1-255 characters")
        # A client without a key still gets safe gateway retries: we mint one for this request.
        extra = {"Idempotency-Key": key or f"gw_{uuid.uuid4().hex}"}
        return await forward("POST", "/orders", request, json=body.model_dump(), extra=extra)

    @app.get("/orders/{order_id}")
    async def get_order(order_id: str, request: Request) -> JSONResponse:
        return await forward("GET", f"/orders/{order_id}", request)

    @app.get("/orders")
    async def list_orders(request: Request, limit: int = 50, status: str | None = None) -> Any:
        query = f"?limit={max(1, min(limit, 1000))}" + (f"&status={status}" if status else "")
        return await forward("GET", "/orders" + query, request)

    @app.get("/status/breakers")
    async def breakers() -> dict:
        result: dict[str, Any] = {"orders": {**orders.snapshot(), "owner": "gateway"}}
        try:
            response = await client.get(settings.urls["orders"] + "/status/breakers", timeout=1.0)
            result.update(response.json()["breakers"])
            error = None
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            error = f"orders unreachable: {type(exc).__name__}"
        body: dict[str, Any] = {"breakers": result}
        if error:
            body["error"] = error
        return body

    @app.post("/status/breakers/{downstream}/reset")
    async def reset_breaker(downstream: str, request: Request) -> JSONResponse:
        require_admin(request, settings)
        if downstream == "orders":
            orders.breaker.reset()
            orders.refresh_gauge()
            return JSONResponse({"downstream": "orders", "state": "closed"})
        token = settings.admin_token or ""
        try:
            response = await client.post(
                f"{settings.urls['orders']}/status/breakers/{downstream}/reset",
                headers={"Authorization": f"Bearer {token}", "Host": "127.0.0.1"},
                timeout=Deadline.after(2.0).remaining())
        except httpx.HTTPError as exc:
            raise ApiError(502, "orders_unavailable", "cannot reach orders to reset") from exc
        return _passthrough(response)

    return app

"""Orders: writes the order and its outbox event in one transaction, reserves inventory,
charges payments, and ends every order in a clear status."""

from __future__ import annotations

import json
import time
import uuid
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Column, Float, MetaData, String, Table, Text, insert, select, update
from starlette.concurrency import run_in_threadpool

from shop import metrics
from shop.db import create_tables, make_engine
from shop.downstream import Downstream
from shop.idempotency import IdempotencyStore, body_hash
from shop.outbox import OutboxPublisher, new_event, outbox_table
from shop.resilience import BreakerState, DeadlineExceededError, ResilienceError
from shop.settings import ShopSettings
from shop.web import ApiError, check_redis, create_app, deadline_of, redis_client, require_admin

meta = MetaData()
orders = Table(
    "orders", meta,
    Column("id", String(64), primary_key=True),
    Column("customer_id", String(64), nullable=False, index=True),
    Column("items", Text, nullable=False),
    Column("total", Float, nullable=False),
    Column("status", String(32), nullable=False, index=True),
    Column("reason", String(128)),
    Column("correlation_id", String(128)),
    Column("idempotency_key", String(255)),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)
outbox = outbox_table(meta)
DOWNSTREAMS = ("payments", "inventory", "notifications")


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")
    product_id: str = Field(min_length=1, max_length=64)
    quantity: int = Field(gt=0, le=1000)
    unit_price: float = Field(ge=0, le=100_000)


class OrderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customer_id: str = Field(min_length=1, max_length=64)
    items: list[Item] = Field(min_length=1, max_length=50)


def order_view(row: dict[str, Any]) -> dict[str, Any]:
    view = dict(row)
    view["items"] = json.loads(view["items"])
    return view


def build(settings: ShopSettings | None = None):  # noqa: ANN201
    settings = settings or ShopSettings.from_env("orders")
    engine = make_engine(settings)
    redis = redis_client(settings.redis_url)
    idem = IdempotencyStore(redis)
    client = httpx.AsyncClient(limits=httpx.Limits(max_connections=200,
                                                   max_keepalive_connections=50))
    downstreams = {name: Downstream(name, settings, client) for name in DOWNSTREAMS}
    publisher = OutboxPublisher(engine, outbox, downstreams["notifications"])

    @asynccontextmanager
    async def lifespan(_app):  # noqa: ANN001, ANN202
        await run_in_threadpool(create_tables, engine, meta)
        publisher.start()
        yield
        await publisher.stop()
        await client.aclose()
        await redis.aclose()
        engine.dispose()

    async def health() -> tuple[str, dict]:
        deps: dict[str, Any] = {"redis": await check_redis(redis)}
        try:
            deps["outbox_pending"] = await run_in_threadpool(publisher.pending)
            deps["database"] = "ok"
        except Exception:  # noqa: BLE001
            deps["database"] = "down"
            return "down", deps
        deps["breakers"] = {n: d.breaker.state.name.lower() for n, d in downstreams.items()}
        degraded = deps["redis"] != "ok" or any(
            d.breaker.state != BreakerState.CLOSED for d in downstreams.values()
        )
        return ("degraded" if degraded else "ok"), deps

    app = create_app(settings, health, lifespan)

    def _create(order_id: str, body: OrderRequest, key: str | None, cid: str) -> dict:
        now = time.time()
        items = [i.model_dump() for i in body.items]
        row = {"id": order_id, "customer_id": body.customer_id, "items": json.dumps(items),
               "total": round(sum(i.quantity * i.unit_price for i in body.items), 2),
               "status": "pending", "reason": None, "correlation_id": cid,
               "idempotency_key": key, "created_at": now, "updated_at": now}
        with engine.begin() as conn:  # the order and its event commit together or not at all
            conn.execute(insert(orders).values(**row))
            conn.execute(insert(outbox).values(**new_event(order_id, "order.created", {
                "order_id": order_id, "customer_id": body.customer_id, "total": row["total"]})))
        return row

    def _finish(row: dict, status: str, reason: str | None) -> dict:
        row = {**row, "status": status, "reason": reason, "updated_at": time.time()}
        with engine.begin() as conn:
            conn.execute(update(orders).where(orders.c.id == row["id"]).values(
                status=status, reason=reason, updated_at=row["updated_at"]))
            conn.execute(insert(outbox).values(**new_event(row["id"], f"order.{status}", {
                "order_id": row["id"], "status": status, "reason": reason})))
        return row

    async def _process(body: OrderRequest, request: Request, key: str | None) -> dict:
        deadline = deadline_of(request, settings)
        cid = request.headers.get("x-correlation-id") or f"corr_{uuid.uuid4().hex[:16]}"
        order_id = f"ord_{uuid.uuid4().hex[:20]}"
        headers = {"X-Correlation-ID": cid}
        row = await run_in_threadpool(_create, order_id, body, key, cid)
        status, reason = "completed", None
        try:
            reserve = await downstreams["inventory"].call(
                "POST", "/inventory/reserve", deadline=deadline, headers=headers,
                json={"order_id": order_id, "items": [
                    {"product_id": i.product_id, "quantity": i.quantity} for i in body.items]})
            if reserve.status_code >= 400:
                status, reason = "inventory_failed", f"inventory answered {reserve.status_code}"
        except (ResilienceError, DeadlineExceededError) as exc:
            status, reason = "inventory_failed", f"inventory: {type(exc).__name__}"
        if status == "completed":
            try:
                charge = await downstreams["payments"].call(
                    "POST", "/payments/charge", deadline=deadline, headers=headers,
                    json={"order_id": order_id, "amount": row["total"]})
                if charge.status_code >= 400:
                    status, reason = "payment_failed", f"payments answered {charge.status_code}"
            except (ResilienceError, DeadlineExceededError) as exc:
                status, reason = "payment_failed", f"payments: {type(exc).__name__}"
        row = await run_in_threadpool(_finish, row, status, reason)
        metrics.orders_total.labels(status).inc()
        return order_view(row)

    @app.post("/orders", status_code=201)
    async def create_order(body: OrderRequest, request: Request) -> JSONResponse:
        key = request.headers.get("idempotency-key")
        if key is not None and not (1 <= len(key) <= 255):
            raise ApiError(422, "invalid_request", "Idempotency-Key must be 1-255 characters")
        use_idem = settings.idempotency and key is not None
        fingerprint = body_hash(body.model_dump()) if use_idem else ""
        if use_idem:
            replay = await idem.begin(key, fingerprint)
            if replay is not None:
                return JSONResponse(replay.body, replay.status,
                                    headers={"Idempotent-Replayed": "true"})
        try:
            view = await _process(body, request, key)
        except BaseException:
            if use_idem:
                await idem.abandon(key)
            raise
        if use_idem:
            try:
                await idem.complete(key, fingerprint, 201, view)
            except Exception:  # noqa: BLE001 - the order exists; the key expires by itself
                pass
        return JSONResponse(view, 201, headers={"X-Correlation-ID": view["correlation_id"] or ""})

    @app.get("/orders/{order_id}")
    async def get_order(order_id: str) -> dict:
        def _get() -> dict | None:
            with engine.connect() as conn:
                row = conn.execute(select(orders).where(orders.c.id == order_id)).mappings().first()
                return order_view(dict(row)) if row else None
        view = await run_in_threadpool(_get)
        if view is None:
            raise ApiError(404, "not_found", f"no order {order_id!r}")
        return view

    @app.get("/orders")
    async def list_orders(limit: int = 50, status: str | None = None) -> dict:
        limit = max(1, min(limit, 1000))

        def _list() -> list[dict]:
            with engine.connect() as conn:
                query = select(orders).order_by(orders.c.created_at.desc()).limit(limit)
                if status:
                    query = query.where(orders.c.status == status)
                return [order_view(dict(r)) for r in conn.execute(query).mappings()]
        items = await run_in_threadpool(_list)
        return {"orders": items, "count": len(items)}

    @app.get("/status/breakers")
    async def breakers() -> dict:
        return {"breakers": {n: {**d.snapshot(), "owner": "orders"}
                             for n, d in downstreams.items()}}

    @app.post("/status/breakers/{downstream}/reset")
    async def reset_breaker(downstream: str, request: Request) -> dict:
        require_admin(request, settings)
        if downstream not in downstreams:
            raise ApiError(404, "not_found",
                           f"unknown downstream {downstream!r}; valid: {', '.join(DOWNSTREAMS)}")
        downstreams[downstream].breaker.reset()
        downstreams[downstream].refresh_gauge()
        return {"downstream": downstream, "state": "closed"}

    @app.get("/outbox")
    async def outbox_status() -> dict:
        return {"pending": await run_in_threadpool(publisher.pending),
                "last_error": publisher.last_error}

    return app

"""Payments: charges, idempotent per order id; chaos error_rate and latency_ms."""

from __future__ import annotations

import asyncio
import time
import uuid
from contextlib import asynccontextmanager

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Column, Float, MetaData, String, Table, insert, select
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from shop import metrics
from shop.chaos import ChaosStore, chaos_router
from shop.db import create_tables, make_engine
from shop.settings import ShopSettings
from shop.web import ApiError, create_app, deadline_of, redis_client

meta = MetaData()
charges = Table(
    "charges", meta,
    Column("order_id", String(64), primary_key=True),
    Column("charge_id", String(64), nullable=False),
    Column("amount", Float, nullable=False),
    Column("created_at", Float, nullable=False),
)


class ChargeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order_id: str = Field(min_length=1, max_length=64)
    amount: float = Field(ge=0, le=1_000_000)


def build(settings: ShopSettings | None = None):  # noqa: ANN201
    settings = settings or ShopSettings.from_env("payments")
    engine = make_engine(settings)
    redis = redis_client(settings.redis_url)
    chaos = ChaosStore("payments", redis, settings.chaos_ttl_s)

    @asynccontextmanager
    async def lifespan(_app):  # noqa: ANN001, ANN202
        await run_in_threadpool(create_tables, engine, meta)
        yield
        await redis.aclose()
        engine.dispose()

    async def health() -> tuple[str, dict]:
        faults = await chaos.current()
        deps = {"redis": "ok" if chaos.redis_ok else "down", "database": "ok",
                "chaos": faults or None}
        return ("degraded" if faults or not chaos.redis_ok else "ok"), deps

    app = create_app(settings, health, lifespan)
    app.include_router(chaos_router(chaos, settings))

    def _charge(body: ChargeRequest) -> tuple[dict, bool]:
        row = {"order_id": body.order_id, "charge_id": f"ch_{uuid.uuid4().hex[:16]}",
               "amount": body.amount, "created_at": time.time()}
        with engine.begin() as conn:
            existing = conn.execute(
                select(charges).where(charges.c.order_id == body.order_id)
            ).mappings().first()
            if existing:
                return dict(existing), False
            try:
                conn.execute(insert(charges).values(**row))
            except IntegrityError:
                pass
            else:
                return row, True
        with engine.connect() as conn:  # a concurrent retry won the insert: return its charge
            existing = conn.execute(
                select(charges).where(charges.c.order_id == body.order_id)
            ).mappings().one()
            return dict(existing), False

    @app.post("/payments/charge")
    async def charge(body: ChargeRequest, request: Request) -> JSONResponse:
        faults = await chaos.current()
        latency = faults.get("latency_ms", 0.0)
        if latency:
            metrics.chaos_injected_total.labels("payments", "latency_ms").inc()
            remaining = deadline_of(request, settings).remaining()
            await asyncio.sleep(max(0.0, min(latency / 1000.0, remaining)))
            if latency / 1000.0 >= remaining:
                raise ApiError(504, "deadline_exceeded", "deadline passed while slowed by chaos")
        if await chaos.maybe_fail("error_rate"):
            metrics.payments_charges_total.labels("injected_error").inc()
            raise ApiError(503, "injected_failure", "payments chaos: injected error")
        record, created = await run_in_threadpool(_charge, body)
        metrics.payments_charges_total.labels("charged" if created else "replayed").inc()
        return JSONResponse({**record, "status": "charged", "replayed": not created},
                            201 if created else 200)

    @app.get("/payments/{order_id}")
    async def get_charge(order_id: str) -> dict:
        def _get() -> dict | None:
            with engine.connect() as conn:
                row = conn.execute(
                    select(charges).where(charges.c.order_id == order_id)
                ).mappings().first()
                return dict(row) if row else None
        row = await run_in_threadpool(_get)
        if row is None:
            raise ApiError(404, "not_found", f"no charge for order {order_id}")
        return row

    @app.get("/payments")
    async def count_charges() -> dict:
        def _count() -> int:
            from sqlalchemy import func
            with engine.connect() as conn:
                return int(conn.execute(select(func.count()).select_from(charges)).scalar_one())
        return {"count": await run_in_threadpool(_count)}

    return app

"""Inventory: seeded stock, idempotent reservations per order; chaos lock_contention_ms
(held while holding the real stock lock, so reservations queue) and error_rate."""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import asynccontextmanager

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text, insert, select, update
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from shop import metrics
from shop.chaos import ChaosStore, chaos_router
from shop.db import create_tables, make_engine
from shop.settings import ShopSettings
from shop.web import ApiError, create_app, deadline_of, redis_client

SEED_PRODUCTS = 100
SEED_STOCK = 1_000_000

meta = MetaData()
stock = Table(
    "stock", meta,
    Column("product_id", String(64), primary_key=True),
    Column("available", Integer, nullable=False),
)
reservations = Table(
    "reservations", meta,
    Column("order_id", String(64), primary_key=True),
    Column("items", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)


class Line(BaseModel):
    model_config = ConfigDict(extra="ignore")
    product_id: str = Field(min_length=1, max_length=64)
    quantity: int = Field(gt=0, le=1000)


class ReserveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order_id: str = Field(min_length=1, max_length=64)
    items: list[Line] = Field(min_length=1, max_length=50)


def product_ids() -> list[str]:
    return [f"SKU-{i:03d}" for i in range(1, SEED_PRODUCTS + 1)]


class OutOfStock(Exception):
    pass


def build(settings: ShopSettings | None = None):  # noqa: ANN201
    settings = settings or ShopSettings.from_env("inventory")
    engine = make_engine(settings)
    redis = redis_client(settings.redis_url)
    chaos = ChaosStore("inventory", redis, settings.chaos_ttl_s)
    stock_lock = asyncio.Lock()

    def _seed() -> None:
        create_tables(engine, meta)
        with engine.begin() as conn:
            have = {r[0] for r in conn.execute(select(stock.c.product_id))}
            missing = [{"product_id": p, "available": SEED_STOCK}
                       for p in product_ids() if p not in have]
            if missing:
                try:
                    conn.execute(insert(stock), missing)
                except IntegrityError:
                    pass  # another replica seeded at the same time

    @asynccontextmanager
    async def lifespan(_app):  # noqa: ANN001, ANN202
        await run_in_threadpool(_seed)
        yield
        await redis.aclose()
        engine.dispose()

    async def health() -> tuple[str, dict]:
        faults = await chaos.current()
        deps = {"redis": "ok" if chaos.redis_ok else "down", "database": "ok",
                "chaos": faults or None, "lock_waiters": len(stock_lock._waiters or ())}
        return ("degraded" if faults or not chaos.redis_ok else "ok"), deps

    app = create_app(settings, health, lifespan)
    app.include_router(chaos_router(chaos, settings))

    def _reserve(body: ReserveRequest) -> tuple[dict, bool]:
        items = [line.model_dump() for line in body.items]
        with engine.begin() as conn:
            existing = conn.execute(
                select(reservations).where(reservations.c.order_id == body.order_id)
            ).mappings().first()
            if existing:
                return {"order_id": body.order_id, "items": json.loads(existing["items"])}, False
            for line in body.items:
                result = conn.execute(
                    update(stock)
                    .where(stock.c.product_id == line.product_id)
                    .where(stock.c.available >= line.quantity)
                    .values(available=stock.c.available - line.quantity)
                )
                if result.rowcount != 1:
                    raise OutOfStock(line.product_id)
            conn.execute(insert(reservations).values(
                order_id=body.order_id, items=json.dumps(items), created_at=time.time()))
        return {"order_id": body.order_id, "items": items}, True

    @app.post("/inventory/reserve")
    async def reserve(body: ReserveRequest, request: Request) -> JSONResponse:
        if await chaos.maybe_fail("error_rate"):
            raise ApiError(503, "injected_failure", "inventory chaos: injected error")
        deadline = deadline_of(request, settings)
        try:
            await asyncio.wait_for(stock_lock.acquire(), timeout=max(0.0, deadline.remaining()))
        except TimeoutError as exc:
            raise ApiError(504, "deadline_exceeded", "deadline passed waiting for the stock lock") \
                from exc
        try:
            hold = (await chaos.current()).get("lock_contention_ms", 0.0)
            if hold:
                # Chaos: hold the real lock so concurrent reservations queue behind it.
                metrics.chaos_injected_total.labels("inventory", "lock_contention_ms").inc()
                await asyncio.sleep(min(hold / 1000.0, max(0.0, deadline.remaining())))
            if deadline.expired():
                raise ApiError(504, "deadline_exceeded", "deadline passed holding the stock lock")
            try:
                record, created = await run_in_threadpool(_reserve, body)
            except OutOfStock as exc:
                raise ApiError(409, "out_of_stock", f"not enough stock for {exc}") from exc
        finally:
            stock_lock.release()
        return JSONResponse({**record, "status": "reserved", "replayed": not created},
                            201 if created else 200)

    @app.get("/inventory/{product_id}")
    async def get_stock(product_id: str) -> dict:
        def _get() -> int | None:
            with engine.connect() as conn:
                return conn.execute(
                    select(stock.c.available).where(stock.c.product_id == product_id)
                ).scalar()
        available = await run_in_threadpool(_get)
        if available is None:
            raise ApiError(404, "not_found", f"unknown product {product_id!r}")
        return {"product_id": product_id, "available": int(available)}

    return app

"""Inventory: seeded stock, idempotent reservations per order, and a release per order that
fences them; chaos lock_contention_ms (held while holding the real stock lock, so reservations
queue) and error_rate (on reservations only: a release is never failed by chaos).

One row per order id in `reservations`, whose primary key serialises a reserve against a
release: a reserve inserts the row and takes the stock in one transaction, or replays the
row (200), or is refused with 409 once the order was released; a release gives the stock
back exactly once, or leaves a `released` tombstone when nothing was reserved.
"""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from shop import metrics
from shop.chaos import ChaosStore, chaos_router
from shop.db import create_tables, make_engine, run_db, write
from shop.settings import ShopSettings
from shop.web import (
    NO_NUL,
    ApiError,
    IdPath,
    JsonAnswer,
    NotBool,
    create_app,
    deadline_of,
    fast_route,
    redis_client,
)

SEED_PRODUCTS = 100
SEED_STOCK = 1_000_000
# The study's load client orders these four (its client contract); seeded like the SKUs.
STUDY_PRODUCTS = ("prod-001", "prod-002", "prod-003", "prod-004")
HELD = "reserved"

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
    # Added after the first release: rows of an older database hold their stock.
    Column("status", String(16), nullable=False, server_default=HELD),
    Column("released_at", Float),
)


# The reservation's statements, built once (see shop/order_store.py).
INSERT_RESERVATION = insert(reservations)
TAKE_STOCK = (update(stock).where(stock.c.product_id == bindparam("b_pid"))
              .where(stock.c.available >= bindparam("b_qty"))
              .values(available=stock.c.available - bindparam("b_qty")))


class Line(BaseModel):
    model_config = ConfigDict(extra="ignore")
    product_id: str = Field(min_length=1, max_length=64, pattern=NO_NUL)
    quantity: Annotated[int, NotBool] = Field(gt=0, le=1000)


class ReserveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order_id: str = Field(min_length=1, max_length=64, pattern=NO_NUL)
    items: list[Line] = Field(min_length=1, max_length=50)


class ReleaseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order_id: str = Field(min_length=1, max_length=64, pattern=NO_NUL)


def product_ids() -> list[str]:
    return [f"SKU-{i:03d}" for i in range(1, SEED_PRODUCTS + 1)] + list(STUDY_PRODUCTS)


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
        await run_db(engine, _seed)
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

    def _get_reservation(order_id: str) -> dict | None:
        with engine.connect() as conn:
            row = conn.execute(select(reservations)
                               .where(reservations.c.order_id == order_id)).mappings().first()
        if row is None:
            return None
        return {**dict(row), "items": json.loads(row["items"])}

    def _reserve(body: ReserveRequest) -> tuple[dict, str]:
        """(reservation, "created" | "replayed" | "refused"). The row goes in first, so a
        concurrent retry or release of the same order loses on the primary key and the stock
        taken in this transaction is rolled back with it."""
        items = [line.model_dump() for line in body.items]
        try:
            with write(engine) as tx:
                tx(INSERT_RESERVATION, {
                    "order_id": body.order_id, "items": json.dumps(items),
                    "created_at": time.time(), "status": HELD, "released_at": None})
                for line in body.items:
                    if tx(TAKE_STOCK, {"b_pid": line.product_id, "b_qty": line.quantity}) != 1:
                        raise OutOfStock(line.product_id)
            return {"order_id": body.order_id, "items": items, "status": HELD}, "created"
        except IntegrityError:
            existing = _get_reservation(body.order_id)
        if existing is None:  # cannot happen: rows are never deleted
            raise ApiError(503, "reservation_conflict", "reservation row vanished; retry")
        return existing, ("replayed" if existing["status"] == HELD else "refused")

    def _release(order_id: str) -> tuple[dict, bool]:
        """(reservation, changed). Give the stock back once, or leave a tombstone."""
        for _ in range(5):  # each turn loses only to a concurrent reserve or release
            now = time.time()
            with engine.begin() as conn:
                # The conditional update takes the write lock first, so the stock goes back
                # at most once even when two releases race.
                released = conn.execute(
                    update(reservations).where(reservations.c.order_id == order_id)
                    .where(reservations.c.status == HELD)
                    .values(status="released", released_at=now)).rowcount
                if released:
                    raw = conn.execute(select(reservations.c["items"])
                                       .where(reservations.c.order_id == order_id)).scalar_one()
                    for line in json.loads(raw):
                        conn.execute(update(stock)
                                     .where(stock.c.product_id == line["product_id"])
                                     .values(available=stock.c.available + line["quantity"]))
            if released:
                return _get_reservation(order_id) or {}, True
            try:
                with engine.begin() as conn:
                    conn.execute(insert(reservations).values(
                        order_id=order_id, items="[]", created_at=now, status="released",
                        released_at=now))
                return _get_reservation(order_id) or {}, True
            except IntegrityError:
                existing = _get_reservation(order_id)
            if existing is not None and existing["status"] != HELD:
                return existing, False
        raise ApiError(503, "release_conflict", "the reservation kept changing; retry")

    @app.post("/inventory/reserve", responses={
        409: {"description": "Not enough stock, or the order was released (compensated)"}})
    async def reserve(body: ReserveRequest, request: Request) -> JSONResponse:
        if await chaos.maybe_fail("error_rate"):
            raise ApiError(503, "injected_failure", "inventory chaos: injected error")
        deadline = deadline_of(request, settings)
        remaining = deadline.remaining()
        try:
            if remaining <= 0:
                raise TimeoutError
            if stock_lock.locked() or stock_lock._waiters:
                # asyncio.timeout, not wait_for: no task per reservation (issue 13's profile);
                # and only when acquiring can wait: a free lock nobody queues for is taken at
                # once (a just-released lock with waiters queues us: that wait is bounded).
                async with asyncio.timeout(remaining):
                    await stock_lock.acquire()
            else:
                await stock_lock.acquire()
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
                record, outcome = await run_db(engine, _reserve, body)
            except OutOfStock as exc:
                raise ApiError(409, "out_of_stock", f"not enough stock for {exc}") from exc
        finally:
            stock_lock.release()
        if outcome == "refused":
            raise ApiError(409, "order_released",
                           f"order {body.order_id} was released; a reservation for it is "
                           "refused (the order was compensated)")
        return JsonAnswer({**record, "replayed": outcome == "replayed"},
                          201 if outcome == "created" else 200)

    fast_route(app, "POST", "/inventory/reserve", reserve, ReserveRequest)

    @app.post("/inventory/release", responses={
        200: {"description": "Stock given back, or a tombstone left (nothing was reserved); "
                             "`replayed` if it already was"},
        503: {"description": "The reservation kept changing under concurrent calls; retry"}})
    async def release(body: ReleaseRequest) -> JSONResponse:
        """Compensation for an order that failed: idempotent, and final for that order id.
        Not behind the stock lock: chaos lock contention must not hold a refund of stock."""
        record, changed = await run_db(engine, _release, body.order_id)
        return JSONResponse({**record, "replayed": not changed}, 200)

    @app.get("/inventory/reservations/{order_id}")
    async def get_reservation(order_id: IdPath) -> dict:
        record = await run_db(engine, _get_reservation, order_id)
        if record is None:
            raise ApiError(404, "not_found", f"no reservation for order {order_id}")
        return record

    @app.get("/inventory/{product_id}")
    async def get_stock(product_id: IdPath) -> dict:
        def _get() -> int | None:
            with engine.connect() as conn:
                return conn.execute(
                    select(stock.c.available).where(stock.c.product_id == product_id)
                ).scalar()
        available = await run_db(engine, _get)
        if available is None:
            raise ApiError(404, "not_found", f"unknown product {product_id!r}")
        return {"product_id": product_id, "available": int(available)}

    return app

"""Payments: charges, idempotent per order id, and a void per order id that fences them;
chaos error_rate and latency_ms (on charges only: compensation is never slowed or failed).

One row per order id in `charges`, whose primary key serialises a charge against a void:
- charge: insert `charged`; if the row exists, replay it (200) or refuse with 409 when the
  order was voided or refunded, so a late or retried charge can never take money again;
- void: mark a `charged` row `refunded`, or insert a `voided` tombstone when nothing was
  charged. Repeating it changes nothing.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import (
    Column,
    Float,
    MetaData,
    String,
    Table,
    bindparam,
    func,
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

meta = MetaData()
charges = Table(
    "charges", meta,
    Column("order_id", String(64), primary_key=True),
    Column("charge_id", String(64), nullable=False),
    Column("amount", Float, nullable=False),
    Column("created_at", Float, nullable=False),
    # Added after the first release: rows of an older database are live charges.
    Column("status", String(16), nullable=False, server_default="charged", index=True),
    Column("refunded_at", Float),
)
LIVE = "charged"
INSERT_CHARGE = insert(charges)  # built once: see shop/order_store.py
SELECT_CHARGE = select(charges).where(charges.c.order_id == bindparam("b_id"))


class ChargeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order_id: str = Field(min_length=1, max_length=64, pattern=NO_NUL)
    amount: Annotated[float, NotBool] = Field(ge=0, le=1_000_000)


class VoidRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order_id: str = Field(min_length=1, max_length=64, pattern=NO_NUL)


def build(settings: ShopSettings | None = None):  # noqa: ANN201
    settings = settings or ShopSettings.from_env("payments")
    engine = make_engine(settings)
    redis = redis_client(settings.redis_url)
    chaos = ChaosStore("payments", redis, settings.chaos_ttl_s)

    @asynccontextmanager
    async def lifespan(_app):  # noqa: ANN001, ANN202
        await run_db(engine, create_tables, engine, meta)
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
    # payments_charges_total's children by outcome, each made on its first use (as before)
    # and then kept: `.labels()` per charge took a lock and built a key (issue 13).
    counted: dict[str, Any] = {}

    def _charges_counted(outcome: str) -> Any:
        child = counted.get(outcome)
        if child is None:
            child = counted[outcome] = metrics.payments_charges_total.labels(outcome)
        return child

    def _get(order_id: str) -> dict | None:
        with engine.connect() as conn:
            row = conn.execute(SELECT_CHARGE, {"b_id": order_id}).mappings().first()
            return dict(row) if row else None

    def _charge(body: ChargeRequest) -> tuple[dict, str]:
        """(row, "created" | "replayed" | "refused"). Insert first: the primary key decides
        between concurrent retries and a concurrent void, on SQLite and PostgreSQL alike."""
        row = {"order_id": body.order_id, "charge_id": f"ch_{secrets.token_hex(8)}",
               "amount": body.amount, "created_at": time.time(), "status": LIVE,
               "refunded_at": None}
        try:
            with write(engine) as tx:
                tx(INSERT_CHARGE, row)
            return row, "created"
        except IntegrityError:
            existing = _get(body.order_id)
        if existing is None:  # cannot happen: rows are never deleted
            raise ApiError(503, "charge_conflict", "charge row vanished; retry")
        return existing, ("replayed" if existing["status"] == LIVE else "refused")

    def _void(order_id: str) -> tuple[dict, bool]:
        """(row, changed). Refund a live charge, or leave a tombstone that refuses one."""
        for _ in range(5):  # each turn loses only to a concurrent charge or void
            now = time.time()
            with engine.begin() as conn:
                refunded = conn.execute(
                    update(charges).where(charges.c.order_id == order_id)
                    .where(charges.c.status == LIVE).values(status="refunded", refunded_at=now)
                ).rowcount
            if refunded:
                return _get(order_id) or {}, True
            try:
                with engine.begin() as conn:
                    conn.execute(insert(charges).values(
                        order_id=order_id, charge_id=f"vd_{uuid.uuid4().hex[:16]}", amount=0.0,
                        created_at=now, status="voided", refunded_at=now))
                return _get(order_id) or {}, True
            except IntegrityError:
                existing = _get(order_id)
            if existing is not None and existing["status"] != LIVE:
                return existing, False
        raise ApiError(503, "void_conflict", "the charge kept changing; retry the void")

    @app.post("/payments/charge", responses={
        409: {"description": "The order was voided or refunded: a charge for it is refused"}})
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
        record, outcome = await run_db(engine, _charge, body)
        _charges_counted(outcome if outcome != "created" else "charged").inc()
        if outcome == "refused":
            raise ApiError(409, "order_voided",
                           f"order {body.order_id} was {record['status']}; a charge for it "
                           "is refused (the order was compensated)")
        return JsonAnswer({**record, "replayed": outcome == "replayed"},
                          201 if outcome == "created" else 200)

    fast_route(app, "POST", "/payments/charge", charge, ChargeRequest)

    @app.post("/payments/void", responses={
        200: {"description": "Refunded, or voided (nothing was charged); `replayed` if it "
                             "already was"},
        503: {"description": "The charge kept changing under concurrent calls; retry"}})
    async def void(body: VoidRequest) -> JSONResponse:
        """Compensation for an order that failed: idempotent, and final for that order id."""
        record, changed = await run_db(engine, _void, body.order_id)
        if changed:
            metrics.payments_charges_total.labels(record.get("status", "voided")).inc()
        return JSONResponse({**record, "replayed": not changed}, 200)

    @app.get("/payments/{order_id}")
    async def get_charge(order_id: IdPath) -> dict:
        row = await run_db(engine, _get, order_id)
        if row is None:
            raise ApiError(404, "not_found", f"no charge for order {order_id}")
        return row

    @app.get("/payments")
    async def count_charges() -> dict:
        """`count` is live charges only; refunded charges and void tombstones are apart."""
        def _count() -> dict[str, int]:
            with engine.connect() as conn:
                rows = conn.execute(select(charges.c.status, func.count())
                                    .group_by(charges.c.status)).all()
            return {str(status): int(n) for status, n in rows}
        by_status = await run_db(engine, _count)
        return {"count": by_status.get(LIVE, 0), "refunded": by_status.get("refunded", 0),
                "voided": by_status.get("voided", 0)}

    return app

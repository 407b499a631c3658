"""The orders table and every write to it.

An order is written `pending` together with its order.created outbox event, then finished
exactly once: finishing is a conditional update (`WHERE status = 'pending'`), so the live
request, the recovery sweeper and another replica can all try and only one wins.

Idempotency lives here durably: `dedupe_key` is the Idempotency-Key under a UNIQUE index
(set only while the idempotency pattern is on) and `request_hash` the body it was used with.
`idempotency_key` stays as before, the key as sent and not unique: with SHOP_IDEMPOTENCY=0
the baseline may make duplicates, and game-day counts them by that column.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    Column,
    Engine,
    Float,
    Index,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError

from shop.db import create_tables, write
from shop.outbox import new_event, outbox_table

log = logging.getLogger("shop.orders")

PENDING, COMPLETED = "pending", "completed"
FAILED = ("payment_failed", "inventory_failed")

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
    # Added for crash safety; migrated into older databases by shop.db.create_tables.
    Column("dedupe_key", String(255)),
    Column("request_hash", String(64)),
    Column("deadline_at", Float),  # the request's deadline: recovery waits past it
    Column("compensation", String(16), index=True),  # NULL, "pending" or "done"
    Index("ux_orders_dedupe_key", "dedupe_key", unique=True),
)
outbox = outbox_table(meta)
# What a client sees of an order: never the hash, the deadline or the compensation state.
PUBLIC = ("id", "customer_id", "items", "total", "status", "reason", "correlation_id",
          "idempotency_key", "created_at", "updated_at")


# The per-order statements, built once: building them per call (`insert(t).values(**row)`)
# made SQLAlchemy's statement construction and cache-key work the largest part of the orders
# service's CPU (issue 13). Parameters go in at execute time.
INSERT_ORDER = insert(orders)
INSERT_EVENT = insert(outbox)
FINISH = (update(orders).where(orders.c.id == bindparam("b_id"))
          .where(orders.c.status == PENDING)
          .values(status=bindparam("b_status"), reason=bindparam("b_reason"),
                  updated_at=bindparam("b_now"), compensation=bindparam("b_compensation")))
SELECT_BY_ID = select(orders).where(orders.c.id == bindparam("b_id"))


class DuplicateKey(Exception):
    """Another order already holds this Idempotency-Key (the unique index said so)."""


def view(row: dict[str, Any]) -> dict[str, Any]:
    body = {name: row[name] for name in PUBLIC}
    body["items"] = json.loads(body["items"])
    body["order_id"] = row["id"]  # the study's client contract; `id` stays for our own
    return body


def http_status(row: dict[str, Any]) -> int:
    """201 only for a completed order; 202 for one recorded but failed."""
    return 201 if row["status"] == COMPLETED else 202


def created_event(row: dict[str, Any]) -> dict[str, Any]:
    return new_event(row["id"], "order.created", {
        "order_id": row["id"], "customer_id": row["customer_id"], "total": row["total"]})


def finished_event(order_id: str, status: str, reason: str | None) -> dict[str, Any]:
    return new_event(order_id, f"order.{status}",
                     {"order_id": order_id, "status": status, "reason": reason})


class OrderStore:
    def __init__(self, engine: Engine, outbox: bool = True) -> None:
        self.engine = engine
        # False (SHOP_OUTBOX=0): no outbox rows; orders notifies directly (orders.py).
        self.outbox = outbox
        # Called after a transaction that wrote an outbox event (the publisher's `wake`).
        self.on_event: Callable[[], None] = lambda: None

    def setup(self) -> None:
        create_tables(self.engine, meta)
        self._backfill_keys()

    def _backfill_keys(self) -> None:
        """Orders of the previous version become replayable by key; a key that version let
        through twice (the bug this column fixes) stays out of the unique index.

        Runs at every start, not only when the column was just added: a crash between the
        ALTER and this update must not leave old keys without their durable copy forever.
        Idempotent, and a key some order already holds as dedupe_key (a replica that started
        serving first) is skipped instead of failing the unique index."""
        with self.engine.begin() as conn:
            n = conn.execute(text(
                "UPDATE orders SET dedupe_key = idempotency_key WHERE dedupe_key IS NULL "
                "AND idempotency_key IN (SELECT idempotency_key FROM orders "
                "WHERE idempotency_key IS NOT NULL GROUP BY idempotency_key "
                "HAVING COUNT(*) = 1) "
                "AND idempotency_key NOT IN (SELECT dedupe_key FROM orders "
                "WHERE dedupe_key IS NOT NULL)")).rowcount
        if n:
            log.warning("migrated orders: %d existing idempotency keys now durable", n)

    def create(self, row: dict[str, Any]) -> None:
        """The order and its order.created event commit together or not at all."""
        try:
            with write(self.engine) as tx:
                tx(INSERT_ORDER, row)
                if self.outbox:
                    tx(INSERT_EVENT, created_event(row))
        except IntegrityError as exc:
            if row.get("dedupe_key") is not None:
                raise DuplicateKey(row["dedupe_key"]) from exc
            raise
        if self.outbox:
            self.on_event()

    def finish(self, order_id: str, status: str, reason: str | None,
               owes_compensation: bool = True) -> float | None:
        """Move a pending order to its final status with its event; returns the updated_at
        written, or None if someone else already finished it. A failed order that may have
        left a reservation or a charge is left with compensation pending until voided and
        released (mark_compensated); one whose calls never reached anyone owes nothing."""
        now = time.time()
        with write(self.engine) as tx:
            won = tx(FINISH, {
                "b_id": order_id, "b_status": status, "b_reason": reason, "b_now": now,
                "b_compensation": "pending" if status != COMPLETED and owes_compensation
                else None})
            if won and self.outbox:
                tx(INSERT_EVENT, finished_event(order_id, status, reason))
        if won and self.outbox:
            self.on_event()
        return now if won else None

    def mark_compensated(self, order_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(orders).where(orders.c.id == order_id)
                         .where(orders.c.compensation == "pending")
                         .values(compensation="done"))

    def get(self, order_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(SELECT_BY_ID, {"b_id": order_id}).mappings().first()
        return dict(row) if row else None

    def by_key(self, key: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(orders).where(orders.c.dedupe_key == key)).mappings().first()
        return dict(row) if row else None

    def listing(self, limit: int, status: str | None) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            query = select(orders).order_by(orders.c.created_at.desc()).limit(limit)
            if status:
                query = query.where(orders.c.status == status)
            return [dict(r) for r in conn.execute(query).mappings()]

    def overdue(self, cutoff: float, default_budget_s: float, limit: int) -> list[str]:
        """Pending orders whose deadline passed before `cutoff`. A row from before
        `deadline_at` existed counts from its creation plus the default request budget."""
        deadline = func.coalesce(orders.c.deadline_at, orders.c.created_at + default_budget_s)
        with self.engine.connect() as conn:
            return list(conn.execute(
                select(orders.c.id).where(orders.c.status == PENDING).where(deadline < cutoff)
                .order_by(orders.c.created_at).limit(limit)).scalars())

    def uncompensated(self, cutoff: float, limit: int) -> list[str]:
        """Failed orders whose void/release did not complete, last touched before `cutoff`."""
        with self.engine.connect() as conn:
            return list(conn.execute(
                select(orders.c.id).where(orders.c.compensation == "pending")
                .where(orders.c.updated_at < cutoff)
                .order_by(orders.c.updated_at).limit(limit)).scalars())

"""What must never happen, read straight from the services' databases after a run (SQLite
files under the state dir, or the one Postgres database of settings.database_url):

- two orders for one idempotency key, and outbox events that never reached notifications;
- more than one live charge per idempotency key (orders -> payments by order id; payments is
  its own database file, so the join happens here, in Python);
- more than one live reservation per order;
- orders still `pending` once recovery had its grace period;
- a live charge on an order that did not complete (money taken, no order), and a completed
  order without a live charge and reservation (an order nobody paid for or reserved).

"Live" tolerates the schema of the day: a charge or reservation that carries a refund, void or
release marker (a status value, a boolean, or a *_at timestamp) does not count.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from chaosctl.clients.http import http_client
from chaosctl.config import Settings
from chaosctl.domain import sqlalchemy_url
from chaosctl.gameday.model import IntegrityReport

# A row with one of these statuses, or one of these markers set, has been undone.
UNDONE_STATUSES = frozenset({"refunded", "voided", "void", "released", "cancelled",
                             "canceled", "reversed", "compensated"})
UNDONE_FLAGS = ("refunded", "voided", "released", "cancelled", "canceled", "reversed")
UNDONE_TIMES = tuple(f"{f}_at" for f in UNDONE_FLAGS)
MAX_EXAMPLES = 5


@dataclass
class _Engines:
    orders: Any
    payments: Any
    inventory: Any
    notifications: Any

    def dispose(self) -> None:
        for engine in {id(e): e for e in vars(self).values()}.values():
            engine.dispose()


def _engines(settings: Settings) -> _Engines:
    # Imported here: SQLAlchemy costs 1.5-2 s of import (python -X importtime on the 2-core
    # machine) and only the end-of-game-day integrity check needs it.
    from sqlalchemy import create_engine

    if settings.database_url:
        engine = create_engine(sqlalchemy_url(settings.database_url))
        return _Engines(engine, engine, engine, engine)
    data = settings.home / "data"
    return _Engines(*(create_engine(f"sqlite:///{data / f'{name}.db'}")
                      for name in ("orders", "payments", "inventory", "notifications")))


def unreadable(settings: Settings) -> str | None:
    """Why the databases cannot be read from here (None when they can, as far as files go):
    the integrity check must never run against an empty database it created itself."""
    if settings.database_url:
        return None  # one PostgreSQL: a connection failure fails the check, saying why
    data = settings.home / "data"
    missing = [f"{name}.db" for name in ("orders", "payments", "inventory", "notifications")
               if not (data / f"{name}.db").is_file()]
    if not missing:
        return None
    return (f"the game day checks integrity in the stack's databases and cannot read them: "
            f"{', '.join(missing)} not in {data}. On the {settings.backend} backend "
            + ("the services' SQLite files live in the cluster's volume, out of chaosctl's "
               "reach: run the stack on PostgreSQL (CHAOSCTL_DATABASE_URL, a database both the "
               "services and chaosctl reach) or the game day on the local or docker backend"
               if settings.backend == "kubernetes" else
               "they are created when the services start: is this the stack's CHAOSCTL_HOME?"))


def wait_outbox_drained(settings: Settings, timeout_s: float = 60.0) -> int:
    """Poll the orders service until no outbox event is pending; returns what is left."""
    deadline = time.monotonic() + timeout_s
    pending = -1
    while time.monotonic() < deadline:
        try:
            with http_client(timeout=2.0) as client:
                pending = int(client.get(settings.url("orders") + "/outbox").json()["pending"])
        except (httpx.HTTPError, ValueError, KeyError):
            pending = -1
        if pending == 0:
            return 0
        time.sleep(0.5)
    return pending


def duplicates_and_lost(settings: Settings, since: float) -> tuple[int, int]:
    """(orders beyond the first per idempotency key, outbox events missing at notifications)
    for orders created at or after `since` (unix seconds)."""
    from sqlalchemy import text

    engines = _engines(settings)
    try:
        with engines.orders.connect() as conn:
            dupes = conn.execute(text(
                "SELECT COALESCE(SUM(n - 1), 0) FROM (SELECT COUNT(*) AS n FROM orders "
                "WHERE created_at >= :t AND idempotency_key IS NOT NULL "
                "GROUP BY idempotency_key HAVING COUNT(*) > 1) AS d"), {"t": since}).scalar()
            events = {row[0] for row in conn.execute(text(
                "SELECT e.id FROM outbox_events e JOIN orders o ON e.aggregate_id = o.id "
                "WHERE o.created_at >= :t"), {"t": since})}
        with engines.notifications.connect() as conn:
            received = {row[0] for row in conn.execute(text(
                "SELECT id FROM notification_events WHERE received_at >= :t"),
                {"t": since - 1.0})}
    finally:
        engines.dispose()
    return int(dupes or 0), len(events - received)


def count_unsettled(settings: Settings, since: float) -> tuple[int, int]:
    """(orders of the run still pending, failed orders whose compensation is not done yet).
    The second is 0 on a schema without a `compensation` column."""
    from sqlalchemy import inspect, text

    engines = _engines(settings)
    try:
        with engines.orders.connect() as conn:
            pending = int(conn.execute(text(
                "SELECT COUNT(*) FROM orders WHERE created_at >= :t AND status = 'pending'"),
                {"t": since}).scalar() or 0)
            columns = {c["name"] for c in inspect(conn).get_columns("orders")}
            compensating = 0
            if "compensation" in columns:
                compensating = int(conn.execute(text(
                    "SELECT COUNT(*) FROM orders WHERE created_at >= :t "
                    "AND compensation = 'pending'"), {"t": since}).scalar() or 0)
    finally:
        engines.dispose()
    return pending, compensating


def wait_no_pending(settings: Settings, since: float, grace_s: float) -> int:
    """Give crash recovery its grace: poll until no order of the run is pending or waiting
    for its compensation (void / release), or grace_s has passed; returns how many orders
    are still pending."""
    deadline = time.monotonic() + grace_s
    while True:
        pending, compensating = count_unsettled(settings, since)
        if pending + compensating == 0 or time.monotonic() >= deadline:
            return pending
        time.sleep(1.0)


def undone_markers(columns: Iterable[str]) -> list[str]:
    """The columns of a table that can mark a row as refunded / voided / released."""
    names = set(columns)
    return [c for c in ("status", *UNDONE_FLAGS, *UNDONE_TIMES) if c in names]


def is_live(row: dict[str, Any], markers: Iterable[str]) -> bool:
    for column in markers:
        value = row.get(column)
        if column == "status":
            if str(value or "").lower() in UNDONE_STATUSES:
                return False
        elif value not in (None, 0, False, "", "0", "false"):
            return False  # a set flag or timestamp: undone
    return True


def _live_rows(engine: Any, table: str, order_ids: set[str],
               notes: list[str]) -> list[dict[str, Any]]:
    """Live rows of `table` (order_id column) that belong to the run's orders."""
    from sqlalchemy import inspect, text

    inspector = inspect(engine)
    if not inspector.has_table(table):
        notes.append(f"{table}: no such table (nothing to check)")
        return []
    markers = undone_markers(c["name"] for c in inspector.get_columns(table))
    notes.append(f"{table}: live unless {', '.join(markers)} says undone" if markers
                 else f"{table}: no refund/void/release column, every row counts as live")
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(text(f"SELECT * FROM {table}")).mappings()]
    return [r for r in rows if r.get("order_id") in order_ids and is_live(r, markers)]


def check(settings: Settings, since: float) -> IntegrityReport:
    """Score the run's orders (created at or after `since`) against the money and stock
    invariants. Call after the outbox drained and recovery had its grace."""
    from sqlalchemy import text

    report = IntegrityReport()
    engines = _engines(settings)
    try:
        with engines.orders.connect() as conn:
            orders = {row[0]: (row[1], row[2]) for row in conn.execute(text(
                "SELECT id, idempotency_key, status FROM orders WHERE created_at >= :t"),
                {"t": since})}
        ids = set(orders)
        charges = _live_rows(engines.payments, "charges", ids, report.notes)
        reservations = _live_rows(engines.inventory, "reservations", ids, report.notes)
    finally:
        engines.dispose()
    report.orders, report.charges = len(orders), len(charges)
    per_key = Counter(orders[c["order_id"]][0] or f"(no key) {c['order_id']}" for c in charges)
    over = {k: n for k, n in per_key.items() if n > 1}
    report.keys_over_charged = len(over)
    report.max_charges_per_key = max(per_key.values(), default=0)
    report.examples += [f"idempotency key {k} has {n} live charges" for k, n in over.items()]
    per_order = Counter(r["order_id"] for r in reservations)
    reserved_over = {o: n for o, n in per_order.items() if n > 1}
    report.orders_over_reserved = len(reserved_over)
    report.max_reservations_per_order = max(per_order.values(), default=0)
    report.examples += [f"order {o} has {n} live reservations" for o, n in reserved_over.items()]
    pending = [o for o, (_, status) in orders.items() if status == "pending"]
    report.pending = len(pending)
    report.examples += [f"order {o} is still pending" for o in pending]
    unpaid = sorted({c["order_id"] for c in charges
                     if orders[c["order_id"]][1] not in ("completed", "pending")})
    report.charged_not_completed = len(unpaid)
    report.examples += [f"order {o} is {orders[o][1]} but its charge is live" for o in unpaid]
    charged, reserved = {c["order_id"] for c in charges}, set(per_order)
    hollow = sorted(o for o, (_, status) in orders.items()
                    if status == "completed" and not (o in charged and o in reserved))
    report.completed_incomplete = len(hollow)
    report.examples += [f"order {o} is completed without a live "
                        + ("charge" if o not in charged else "reservation") for o in hollow]
    report.examples = report.examples[:MAX_EXAMPLES]
    return report

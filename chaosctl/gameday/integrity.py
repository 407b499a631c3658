"""What must never happen, checked in the databases after a run: duplicate orders for one
idempotency key, and outbox events that never reached notifications; plus counters read
straight from the services' /metrics for retry amplification and load shed."""

from __future__ import annotations

import time
from dataclasses import dataclass

from chaosctl.config import Settings


@dataclass
class Counters:
    orders: float = 0.0
    payment_calls: float = 0.0
    load_shed: float = 0.0


def _sum(text: str, name: str, label: str | None = None) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and (label is None or label in sample.labels.values()):
                total += sample.value
    return total


def read_counters(settings: Settings) -> Counters:
    """Cumulative counters now (services that do not answer count as 0)."""
    import httpx

    counters = Counters()
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        try:
            text = client.get(settings.url("orders") + "/metrics").text
            counters.orders = _sum(text, "orders_total")
            counters.payment_calls = _sum(text, "downstream_requests_total", "payments")
        except httpx.HTTPError:
            pass
        try:
            text = client.get(settings.url("gateway") + "/metrics").text
            counters.load_shed = _sum(text, "load_shed_total")
        except httpx.HTTPError:
            pass
    return counters


def _engines(settings: Settings):  # noqa: ANN202
    from sqlalchemy import create_engine

    if settings.database_url:
        url = settings.database_url.replace("postgresql://", "postgresql+psycopg://", 1)
        engine = create_engine(url)
        return engine, engine
    data = settings.home / "data"
    return (create_engine(f"sqlite:///{data / 'orders.db'}"),
            create_engine(f"sqlite:///{data / 'notifications.db'}"))


def wait_outbox_drained(settings: Settings, timeout_s: float = 60.0) -> int:
    """Poll the orders service until no outbox event is pending; returns what is left."""
    import httpx

    deadline = time.monotonic() + timeout_s
    pending = -1
    while time.monotonic() < deadline:
        try:
            pending = int(httpx.get(settings.url("orders") + "/outbox", timeout=2.0,
                                    trust_env=False)
                          .json()["pending"])
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

    orders_db, notifications_db = _engines(settings)
    try:
        with orders_db.connect() as conn:
            dupes = conn.execute(text(
                "SELECT COALESCE(SUM(n - 1), 0) FROM (SELECT COUNT(*) AS n FROM orders "
                "WHERE created_at >= :t AND idempotency_key IS NOT NULL "
                "GROUP BY idempotency_key HAVING COUNT(*) > 1) AS d"), {"t": since}).scalar()
            events = {row[0] for row in conn.execute(text(
                "SELECT e.id FROM outbox_events e JOIN orders o ON e.aggregate_id = o.id "
                "WHERE o.created_at >= :t"), {"t": since})}
        with notifications_db.connect() as conn:
            received = {row[0] for row in conn.execute(text(
                "SELECT id FROM notification_events WHERE received_at >= :t"),
                {"t": since - 1.0})}
    finally:
        orders_db.dispose()
        notifications_db.dispose()
    return int(dupes or 0), len(events - received)

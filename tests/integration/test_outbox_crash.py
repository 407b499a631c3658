"""kill -9 of orders during a stream of orders loses no outbox event and duplicates none at
notifications, and leaves no order pending: after the recovery grace every order is completed
with its charge and reservation, or failed with neither. Runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from tests.integration.ledger import db_url, wait_settled
from tests.integration.shopclient import OrderStream, new_customer
from tests.integration.shopstack import ShopStack
from tests.support import wait_for


def _rows(stack: ShopStack, customer: str) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """(order id -> status, outbox events of those orders) read straight from orders' DB."""
    engine = create_engine(db_url(stack))
    try:
        with engine.connect() as conn:
            orders = {r.id: r.status for r in conn.execute(
                text("SELECT id, status FROM orders WHERE customer_id = :c"), {"c": customer})}
            events = [dict(r._mapping) for r in conn.execute(text(
                "SELECT e.id, e.aggregate_id, e.type, e.published FROM outbox_events e "
                "JOIN orders o ON o.id = e.aggregate_id WHERE o.customer_id = :c"),
                {"c": customer})]
    finally:
        engine.dispose()
    return orders, events


def test_kill9_orders_loses_and_duplicates_no_outbox_event(any_stack: ShopStack) -> None:
    stack = any_stack
    customer = new_customer("crash")
    gateway = stack.url("gateway")
    stream = OrderStream(gateway, customer, workers=4, max_orders=2000).start()
    try:
        wait_for(lambda: len(stream.created()) >= 20, timeout=60,
                 what="20 orders before the kill")
        stack.kill9("orders")  # mid-stream: some orders are between their two transactions
        killed_at = len(stream.results)
        wait_for(lambda: stream.failures() >= 4 and len(stream.results) >= killed_at + 4,
                 timeout=60, what="requests failing while orders is dead")
        stack.restart("orders")  # same command, same environment
        # The gateway's breaker may have opened on the dead orders: the runbook's reset.
        httpx.post(f"{gateway}/status/breakers/orders/reset", headers=stack.admin_headers(),
                   timeout=10).raise_for_status()
        after_restart = len(stream.created())
        try:
            wait_for(lambda: len(stream.created()) >= after_restart + 20, timeout=60,
                     what="20 more orders after orders restarted")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last results: {stream.summary()}") from None
    finally:
        stream.stop()

    assert stream.failures() > 0, "the kill did not interrupt the stream"
    wait_for(lambda: httpx.get(f"{stack.url('orders')}/outbox", timeout=10).json()["pending"]
             == 0, timeout=60, what="the restarted publisher to drain the outbox")

    # The orders the kill cut off are finished by recovery (after their deadline + grace):
    # none stays pending, none keeps money or stock it should not.
    wait_settled(stack, customer)
    wait_for(lambda: httpx.get(f"{stack.url('orders')}/outbox", timeout=10).json()["pending"]
             == 0, timeout=60, what="the publisher to drain the recovered orders' events")
    orders, outbox = _rows(stack, customer)
    assert "pending" not in orders.values()
    # Every order the client was told about was durably written.
    acknowledged = {o["id"] for o in stream.created()}
    assert acknowledged <= set(orders), acknowledged - set(orders)
    # Every order row has its order.created event (same transaction) and its final one.
    per_order = Counter(e["aggregate_id"] for e in outbox)
    for order_id, status in orders.items():
        assert per_order[order_id] == 2, (order_id, status)
    assert all(e["published"] for e in outbox)

    # Notifications has each of those events exactly once, and nothing else for these orders.
    listing = httpx.get(f"{stack.url('notifications')}/events", params={"limit": 10000},
                        timeout=30).json()
    assert listing["count"] <= 10000
    received = [e for e in listing["events"] if e["aggregate_id"] in orders]
    received_ids = Counter(e["id"] for e in received)
    assert max(received_ids.values()) == 1, "an event was stored twice at notifications"
    assert set(received_ids) == {e["id"] for e in outbox}

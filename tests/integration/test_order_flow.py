"""An order flows end to end: gateway -> orders -> inventory -> payments, and its outbox events
reach notifications. Runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import httpx

from tests.integration.shopclient import events_of, new_customer, order_body
from tests.integration.shopstack import ShopStack, metric_value
from tests.support import wait_for


def test_order_flows_end_to_end(any_stack: ShopStack) -> None:
    stack = any_stack
    product = "SKU-042"
    with httpx.Client(timeout=15) as client:
        stock_before = client.get(f"{stack.url('inventory')}/inventory/{product}").json()[
            "available"]
        completed_before = metric_value(stack.metrics_text("orders"), "orders_total",
                                        status="completed")

        response = client.post(f"{stack.url('gateway')}/orders",
                               json=order_body(new_customer("flow"), product, 3, 9.99),
                               headers={"X-Correlation-ID": "corr-flow-test-1"})
        assert response.status_code == 201, response.text
        order = response.json()
        assert order["status"] == "completed", order
        assert order["total"] == 29.97
        assert order["items"] == [{"product_id": product, "quantity": 3, "unit_price": 9.99}]
        # The correlation id travels gateway -> orders and back.
        assert order["correlation_id"] == "corr-flow-test-1"
        assert response.headers["x-correlation-id"] == "corr-flow-test-1"

        fetched = client.get(f"{stack.url('gateway')}/orders/{order['id']}").json()
        assert fetched["status"] == "completed" and fetched["id"] == order["id"]
        listed = client.get(f"{stack.url('gateway')}/orders", params={"limit": 5}).json()
        assert order["id"] in {o["id"] for o in listed["orders"]}

        stock_after = client.get(f"{stack.url('inventory')}/inventory/{product}").json()[
            "available"]
        assert stock_after == stock_before - 3

        charge = client.get(f"{stack.url('payments')}/payments/{order['id']}")
        assert charge.status_code == 200, charge.text
        assert charge.json()["amount"] == 29.97

        assert metric_value(stack.metrics_text("orders"), "orders_total",
                            status="completed") == completed_before + 1

        # The outbox publisher delivers both events (created, completed) exactly once.
        events = wait_for(lambda: (e := events_of(stack, order["id"])) and len(e) >= 2 and e,
                          timeout=30, what="the order's outbox events at notifications")
        assert sorted(e["type"] for e in events) == ["order.completed", "order.created"]
        assert len({e["id"] for e in events}) == 2

        wait_for(lambda: client.get(f"{stack.url('orders')}/outbox").json()["pending"] == 0,
                 timeout=30, what="outbox to drain")

        # Without a correlation id the gateway mints one.
        second = client.post(f"{stack.url('gateway')}/orders",
                             json=order_body(new_customer("flow"), product))
        assert second.status_code == 201, second.text
        assert second.json()["correlation_id"].startswith("corr_")


def test_unknown_order_is_404(any_stack: ShopStack) -> None:
    response = httpx.get(f"{any_stack.url('gateway')}/orders/ord_does_not_exist", timeout=10)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"

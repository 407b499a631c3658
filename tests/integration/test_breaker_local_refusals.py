"""Under inventory lock contention, calls that orders' bulkhead refuses are not breaker
outcomes: the inventory breaker's window holds exactly the calls that were sent.

Real processes: the session stack's inventory with 1.5 s of lock contention, and an extra
orders process with a one-slot inventory bulkhead that refuses at once (no wait) and a
breaker window long enough that nothing slides out during the test. Refused calls used to
be recorded as successes, which diluted the failure rate (configuration E of `chaosctl
experiment`, inventory_lock: the breaker rarely opened).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.integration.shopclient import new_customer, order_body
from tests.integration.shopstack import ShopStack, metric_value

ORDERS = 6
ENV = {"SHOP_BULKHEAD_SIZE": "1", "SHOP_BULKHEAD_WAIT_S": "0",
       "SHOP_BREAKER_WINDOW_S": "600", "SHOP_BREAKER_MIN_CALLS": "1000"}


def _counts(stack: ShopStack, port: int) -> tuple[int, float, float]:
    """(inventory breaker calls in window, inventory calls sent, bulkhead refusals)."""
    breakers = httpx.get(f"http://127.0.0.1:{port}/status/breakers", timeout=10).json()
    text = stack.metrics_text("orders", port=port)
    return (breakers["breakers"]["inventory"]["calls_in_window"],
            metric_value(text, "downstream_requests_total", to_service="inventory"),
            metric_value(text, "bulkhead_rejections_total", downstream="inventory"))


def test_bulkhead_refusals_leave_the_breaker_window_alone(stack: ShopStack) -> None:
    data = stack.workdir / "data-orders-refusals"
    proc, port = stack.spawn("orders", env={**ENV, "SHOP_DATA_DIR": str(data)},
                             tag="orders-refusals")
    try:
        window0, sent0, refused0 = _counts(stack, port)
        response = httpx.post(f"{stack.url('inventory')}/chaos/config",
                              headers=stack.admin_headers(),
                              json={"lock_contention_ms": 1500, "ttl_s": 120}, timeout=10)
        assert response.status_code == 200, response.text
        customer = new_customer("refusals")
        with ThreadPoolExecutor(ORDERS) as pool:
            results = list(pool.map(
                lambda _: httpx.post(f"http://127.0.0.1:{port}/orders",
                                     json=order_body(customer, "SKU-002"), timeout=30),
                range(ORDERS)))
        statuses = [r.json()["status"] for r in results]
        assert set(statuses) <= {"completed", "inventory_failed"}, statuses

        window, sent, refused = _counts(stack, port)
        # The situation under test happened: orders sent some reservations and its bulkhead
        # refused others ...
        assert sent - sent0 >= 1 and refused - refused0 >= 1, (sent - sent0, refused - refused0)
        # ... and only the ones sent are in the breaker's window.
        assert window - window0 == sent - sent0, (window - window0, sent - sent0,
                                                  refused - refused0)
    finally:
        proc.stop()

"""Orders reports its event loop lag on every answer (x-shop-loop-lag-ms and
event_loop_lag_seconds), and the gateway's adaptive limit reads it from the answers of orders
it forwards: orders frozen for 0.3 s (SIGSTOP) comes back reporting that it queued, and the
gateway's /health says so. The gateway's own answers do not carry the header."""

from __future__ import annotations

import os
import signal
import time
import uuid

import httpx

from tests.integration.shopclient import order_body
from tests.integration.shopstack import ShopStack, metric_value
from tests.support import wait_for


def _concurrency(stack: ShopStack) -> dict:
    health = httpx.get(stack.url("gateway") + "/health", timeout=5).json()
    return health["dependencies"]["concurrency"]


def _order(stack: ShopStack) -> httpx.Response:
    return httpx.post(stack.url("gateway") + "/orders", json=order_body("lag-1", "SKU-001"),
                      headers={"Idempotency-Key": f"lag-{uuid.uuid4().hex}"}, timeout=10)


def test_a_frozen_orders_reports_its_lag_and_the_gateway_reads_it(stack: ShopStack) -> None:
    own = httpx.get(stack.url("orders") + "/health", timeout=5)
    assert float(own.headers["x-shop-loop-lag-ms"]) >= 0
    answer = _order(stack)
    assert answer.status_code == 201, answer.text
    assert "x-shop-loop-lag-ms" not in answer.headers  # internal: not for the shop's clients
    assert _concurrency(stack)["downstream_lag_ms"] is not None

    pid = stack.pids()["orders"]
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(0.3)
    finally:
        os.kill(pid, signal.SIGCONT)

    def queueing_seen() -> bool:
        assert _order(stack).status_code in (201, 202)
        return _concurrency(stack)["downstream_queueing"]

    wait_for(queueing_seen, timeout=10, what="the gateway seeing orders queue")
    assert _concurrency(stack)["downstream_lag_ms"] >= 0
    lag = metric_value(stack.metrics_text("orders"), "event_loop_lag_seconds",
                       service="orders")
    assert lag >= 0

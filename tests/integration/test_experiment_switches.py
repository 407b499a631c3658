"""The stack switches `chaosctl experiment` needs for the study's configurations, through real
processes: SHOP_OUTBOX=0 (A-E: orders notifies notifications in the request, no outbox row)
and SHOP_RETRY_BACKOFF_S / SHOP_RETRY_JITTER (B-E: immediate retries). Backoff is checked
through the stack's own counter of the seconds it chose to wait, never by timing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest

from tests.integration.shopclient import new_customer, order_body
from tests.integration.shopstack import ShopStack, metric_value
from tests.support import free_port, wait_for


def _orders(stack: ShopStack, env: dict[str, str], tag: str) -> tuple[object, int, Path]:
    """An extra orders process with `env`, on its own SQLite directory."""
    data = stack.workdir / f"data-{tag}"
    proc, port = stack.spawn("orders", env={**env, "SHOP_DATA_DIR": str(data)}, tag=tag)
    return proc, port, data / "orders.db"


def _stop(proc) -> None:  # noqa: ANN001 - tests.integration.shopstack.Proc
    proc.stop()
    wait_for(lambda: not proc.alive(), timeout=20, what="extra orders to stop")


def _outbox_rows(db: Path, order_id: str) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT COUNT(*) FROM outbox_events WHERE aggregate_id = ?",
                            (order_id,)).fetchone()[0]


def _events(stack: ShopStack, order_id: str) -> list[str]:
    body = httpx.get(f"{stack.url('notifications')}/events",
                     params={"aggregate_id": order_id}, timeout=10).json()
    return sorted(e["type"] for e in body["events"])


def _payment_errors(stack: ShopStack, rate: float) -> None:
    response = httpx.post(f"{stack.url('payments')}/chaos/config",
                          headers=stack.admin_headers(),
                          json={"error_rate": rate, "ttl_s": 120}, timeout=10)
    assert response.status_code == 200, response.text


def test_without_outbox_the_notification_arrives_in_the_request_and_no_row_is_written(
        stack: ShopStack) -> None:
    proc, port, db = _orders(stack, {"SHOP_OUTBOX": "0"}, "orders-no-outbox")
    try:
        response = httpx.post(f"http://127.0.0.1:{port}/orders",
                              json=order_body(new_customer("nobox")), timeout=30)
        assert response.status_code == 201, response.text
        order_id = response.json()["order_id"]
        # Sent before the answer: no waiting for a publisher.
        assert _events(stack, order_id) == ["order.completed", "order.created"]
        assert _outbox_rows(db, order_id) == 0
        text = stack.metrics_text("orders", port=port)
        assert metric_value(text, "notifications_direct_total", outcome="sent") == 1
        assert metric_value(text, "outbox_pending") == 0
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).json()
        assert health["dependencies"]["outbox_pending"] == 0
    finally:
        _stop(proc)


def test_without_outbox_a_down_notifications_loses_the_event(stack: ShopStack) -> None:
    """Best effort, as a stack without an outbox is: the order completes, its events are
    gone for good (nothing to retry from). The outbox (default) would keep them."""
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: connection refused
    proc, port, db = _orders(stack, {"SHOP_OUTBOX": "0", "SHOP_NOTIFICATIONS_URL": dead,
                                     "SHOP_TIMEOUT_NOTIFICATIONS_S": "1"},
                             "orders-no-outbox-dead")
    try:
        response = httpx.post(f"http://127.0.0.1:{port}/orders",
                              json=order_body(new_customer("nobox-dead")), timeout=30)
        assert response.status_code == 201, response.text
        order_id = response.json()["order_id"]
        assert _outbox_rows(db, order_id) == 0
        assert _events(stack, order_id) == []
        text = stack.metrics_text("orders", port=port)
        assert metric_value(text, "notifications_direct_total", outcome="failed") == 1
        assert metric_value(text, "notifications_direct_total", outcome="sent") == 0
    finally:
        _stop(proc)


def test_with_the_outbox_default_the_events_go_through_the_table(stack: ShopStack) -> None:
    proc, port, db = _orders(stack, {}, "orders-outbox")
    try:
        response = httpx.post(f"http://127.0.0.1:{port}/orders",
                              json=order_body(new_customer("box")), timeout=30)
        assert response.status_code == 201, response.text
        order_id = response.json()["order_id"]
        assert _outbox_rows(db, order_id) == 2
        wait_for(lambda: _events(stack, order_id) == ["order.completed", "order.created"],
                 timeout=30, what="the outbox publisher to deliver both events")
        text = stack.metrics_text("orders", port=port)
        assert metric_value(text, "notifications_direct_total") == 0
    finally:
        _stop(proc)


NAIVE = {"SHOP_BREAKERS": "0", "SHOP_RETRY_MAX_ATTEMPTS": "4",
         "SHOP_RETRY_BUDGET_RATIO": "1000", "SHOP_RETRY_BUDGET_FLOOR": "10000"}


@pytest.mark.parametrize(("backoff", "jitter", "per_order"), [
    ("0", "0", 0.0),  # the study's B: immediate
    ("0.01", "0", 0.01 + 0.02 + 0.04),  # no jitter: exactly base * 2^(n-1) per retry
])
def test_retry_backoff_without_jitter_is_exactly_the_configured_wait(
        stack: ShopStack, backoff: str, jitter: str, per_order: float) -> None:
    env = {**NAIVE, "SHOP_RETRY_BACKOFF_S": backoff, "SHOP_RETRY_JITTER": jitter}
    proc, port, _db = _orders(stack, env, f"orders-backoff-{backoff}")
    try:
        _payment_errors(stack, 1.0)
        n = 5
        for _ in range(n):
            response = httpx.post(f"http://127.0.0.1:{port}/orders",
                                  json=order_body(new_customer("backoff")), timeout=30)
            assert response.status_code == 202, response.text
        text = stack.metrics_text("orders", port=port)
        assert metric_value(text, "retry_attempts_total", downstream="payments") == 3 * n
        assert metric_value(text, "retry_requests_total", downstream="payments") == 3 * n
        waited = metric_value(text, "retry_backoff_seconds_total", downstream="payments")
        assert waited == pytest.approx(n * per_order, abs=1e-9)
    finally:
        _payment_errors(stack, 0.0)
        _stop(proc)


def test_default_retries_back_off_with_jitter(stack: ShopStack) -> None:
    """The default policy is unchanged: a jittered wait below base * 2^(n-1) per retry."""
    proc, port, _db = _orders(stack, NAIVE, "orders-backoff-default")
    try:
        _payment_errors(stack, 1.0)
        n = 5
        for _ in range(n):
            response = httpx.post(f"http://127.0.0.1:{port}/orders",
                                  json=order_body(new_customer("jitter")), timeout=30)
            assert response.status_code == 202, response.text
        text = stack.metrics_text("orders", port=port)
        assert metric_value(text, "retry_attempts_total", downstream="payments") == 3 * n
        waited = metric_value(text, "retry_backoff_seconds_total", downstream="payments")
        assert 0 < waited < n * (0.05 + 0.1 + 0.2)
        assert waited != pytest.approx(n * (0.05 + 0.1 + 0.2))
    finally:
        _payment_errors(stack, 0.0)
        _stop(proc)


def test_a_bad_switch_value_stops_orders_with_one_line(stack: ShopStack, tmp_path: Path) -> None:
    import subprocess
    import sys

    env = stack.service_env("orders", {"SHOP_OUTBOX": "maybe", "SHOP_RETRY_BACKOFF_S": "-1"})
    done = subprocess.run([sys.executable, "-m", "shop.serve", "orders", "--port", "1"],
                          env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "SHOP_OUTBOX='maybe'" in done.stderr and "SHOP_RETRY_BACKOFF_S='-1'" in done.stderr


def test_a_retry_refused_by_the_breaker_is_not_counted_as_sent(stack: ShopStack) -> None:
    """retry_requests_total counts retries on the wire; retry_attempts_total the decisions.
    The experiment's retry amplification (sent / (sent - retries sent)) needs the first."""
    env = {**NAIVE, "SHOP_BREAKERS": "1", "SHOP_BREAKER_MIN_CALLS": "2",
           "SHOP_RETRY_BACKOFF_S": "0", "SHOP_RETRY_JITTER": "0"}
    proc, port, _db = _orders(stack, env, "orders-breaker-retry")
    try:
        _payment_errors(stack, 1.0)
        for _ in range(3):
            response = httpx.post(f"http://127.0.0.1:{port}/orders",
                                  json=order_body(new_customer("brk")), timeout=30)
            assert response.status_code == 202, response.text
        text = stack.metrics_text("orders", port=port)
        # Order 1: a first attempt and one retry fail (2 calls: the breaker opens), the
        # second retry is decided but refused by the open breaker. Orders 2-3: refused.
        assert metric_value(text, "downstream_requests_total", to_service="payments") == 2
        assert metric_value(text, "retry_attempts_total", downstream="payments") == 2
        assert metric_value(text, "retry_requests_total", downstream="payments") == 1
    finally:
        _payment_errors(stack, 0.0)
        _stop(proc)

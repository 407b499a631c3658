"""Issue: a crash mid-order double-charges. Orders is SIGKILLed with five keyed orders in
flight, each already reserved and waiting on a slowed payments; after a restart none stays
`pending`, each is completed with one charge and one reservation or failed with neither, and
the same keys replay the originals (also once Redis forgot the keys), with no new order or
charge. Runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis

from tests.integration.ledger import (
    clear_chaos,
    held_reservations,
    live_charges,
    order_rows,
    set_chaos,
    stock,
    wait_settled,
)
from tests.integration.shopclient import new_customer, order_body
from tests.integration.shopstack import ShopStack, metric_value
from tests.support import wait_for

PRODUCT, QUANTITY = "SKU-055", 2


def _declined(stack: ShopStack) -> float:
    return metric_value(stack.metrics_text("payments"), "payments_charges_total",
                        outcome="injected_error")


def _slowed(stack: ShopStack) -> float:
    """Charges payments has started to delay (counted as the delay begins)."""
    return metric_value(stack.metrics_text("payments"), "chaos_injected_total",
                        service="payments", fault="latency_ms")


def _at_payments(stack: ShopStack, n: int, slowed_before: float) -> bool:
    """All n charges inside payments' delay: one cheap read, so the kill comes at once."""
    return _slowed(stack) >= slowed_before + n


@pytest.mark.parametrize("payments_outcome", ["charges", "declines"])
def test_kill9_with_orders_in_flight_recovers_each_and_replays_keys(
        any_stack: ShopStack, payments_outcome: str) -> None:
    stack = any_stack
    gateway = stack.url("gateway")
    customer = new_customer("kill9")
    keys = [f"K-{i}-{uuid.uuid4().hex[:8]}" for i in range(1, 6)]
    body = order_body(customer, PRODUCT, QUANTITY, 4.0)
    stock_before, charges_before = stock(stack, PRODUCT), live_charges(stack)
    declined_before, slowed_before = _declined(stack), _slowed(stack)
    # Slow payments (under the 2 s hop timeout); "declines" also fails every charge, after
    # the delay, so those orders die reserved but never charged.
    chaos = {"latency_ms": 1500.0}
    if payments_outcome == "declines":
        chaos["error_rate"] = 1.0
    set_chaos(stack, "payments", **chaos)

    def post(key: str) -> httpx.Response:
        return httpx.post(f"{gateway}/orders", json=body, headers={"Idempotency-Key": key},
                          timeout=30)

    with ThreadPoolExecutor(len(keys)) as pool:
        futures = [pool.submit(post, key) for key in keys]
        try:
            # The charges end 1.5 s after they start: poll only what must be true before the
            # kill (a slow poll here is what lets a charge finish first on a busy machine) ...
            wait_for(lambda: _at_payments(stack, len(keys), slowed_before), timeout=30,
                     interval=0.02, what="5 charges waiting in payments' delay")
        finally:
            stack.kill9("orders")  # also on failure: the futures then end
            cut_off = [f.result() for f in futures]
    try:
        # Each client was cut off: none of the five got an answer from orders.
        assert all(r.status_code >= 500 for r in cut_off), [r.text for r in cut_off]
        # ... and check the rest after it: with orders dead nothing moves these rows, so
        # this is the state the kill found: five pending orders, each holding its stock.
        pending = [r["id"] for r in order_rows(stack, customer) if r["status"] == "pending"]
        assert len(pending) == len(keys), order_rows(stack, customer)
        assert held_reservations(stack, pending) == set(pending)
        _recover_and_check(stack, payments_outcome, keys, customer, post, stock_before,
                           charges_before, declined_before)
    finally:
        if not stack.procs["orders"].alive():  # leave the session's stack usable
            stack.restart("orders")


def _recover_and_check(stack: ShopStack, payments_outcome: str, keys: list[str],
                       customer: str, post: Callable[[str], httpx.Response],
                       stock_before: int, charges_before: int, declined_before: float) -> None:
    gateway = stack.url("gateway")
    # Payments does not know orders died: it finishes the five slowed charges (or declines
    # them) on its own. Wait for that before clearing chaos, which it re-reads after the delay.
    if payments_outcome == "charges":
        wait_for(lambda: live_charges(stack) == charges_before + len(keys), timeout=30,
                 what="payments to finish the five charges")
    else:
        wait_for(lambda: _declined(stack) >= declined_before + len(keys), timeout=30,
                 what="payments to decline the five charges")
    clear_chaos(stack, "payments")
    stack.restart("orders")
    httpx.post(f"{gateway}/status/breakers/orders/reset", headers=stack.admin_headers(),
               timeout=10).raise_for_status()

    # Recovery: after each order's deadline + grace, nothing is pending and the ledger holds.
    rows = wait_settled(stack, customer)
    assert len(rows) == len(keys)
    completed = [r for r in rows if r["status"] == "completed"]
    # The documented rule: reserved AND charged -> finished as completed; anything less ->
    # failed and compensated (stock given back, any charge refunded or fenced off).
    if payments_outcome == "charges":
        assert len(completed) == len(keys), [(r["status"], r["reason"]) for r in rows]
        assert all(r["reason"].startswith("recovered") for r in rows)
    else:
        assert not completed, rows
        assert {r["status"] for r in rows} == {"payment_failed"}, rows
    assert live_charges(stack) == charges_before + len(completed)
    assert stock(stack, PRODUCT) == stock_before - QUANTITY * len(completed)
    by_key = {r["idempotency_key"]: r for r in rows}

    def replays_originals() -> None:
        for key in keys:
            again = post(key)
            original = by_key[key]
            assert again.status_code == (201 if original["status"] == "completed" else 202), \
                again.text
            assert again.headers.get("x-idempotency-replayed") == "true", again.headers
            assert again.json()["order_id"] == original["id"]
            assert again.json()["status"] == original["status"]

    replays_originals()
    # The second half: once Redis has no record (the in-progress marker expired, or
    # Redis lost it), the same keys still replay; the database holds the keys.
    rdb = redis.Redis.from_url(stack.redis_url, socket_timeout=5)
    try:
        assert rdb.delete(*(f"idem:{k}" for k in keys)) == len(keys)
    finally:
        rdb.close()
    replays_originals()
    assert len(order_rows(stack, customer)) == len(keys)
    assert live_charges(stack) == charges_before + len(completed)
    assert stock(stack, PRODUCT) == stock_before - QUANTITY * len(completed)

"""The study's client contract, through the gateway: products prod-001..prod-004 exist with
ample stock; an order answer carries `order_id`; 201 only for a completed order, 202 for one
recorded but failed; a replay carries X-Idempotency-Replayed: true. The payload is the
study's load client's (several items, unit_price as a decimal string)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.integration.ledger import clear_chaos, downstream_state, set_chaos, stock
from tests.integration.shopstack import ShopStack

STUDY_PRODUCTS = ("prod-001", "prod-002", "prod-003", "prod-004")


def _study_order(customer: str) -> dict:
    # As the study's k6 client builds it: price with two decimals, sent as a string.
    return {"customer_id": customer,
            "items": [{"product_id": "prod-001", "quantity": 2, "unit_price": "57.23"},
                      {"product_id": "prod-004", "quantity": 1, "unit_price": "10.50"}]}


def _post(stack: ShopStack, body: dict, key: str) -> httpx.Response:
    return httpx.post(f"{stack.url('gateway')}/orders", json=body, timeout=30,
                      headers={"Idempotency-Key": key, "Content-Type": "application/json"})


@pytest.mark.parametrize("product", STUDY_PRODUCTS)
def test_study_products_exist_with_ample_stock(stack: ShopStack, product: str) -> None:
    assert stock(stack, product) >= 100_000


def test_completed_order_is_201_with_order_id_and_its_replay_is_marked(stack: ShopStack
                                                                       ) -> None:
    body, key = _study_order(f"study-{uuid.uuid4().hex[:8]}"), str(uuid.uuid4())
    before = stock(stack, "prod-001")
    first = _post(stack, body, key)
    assert first.status_code == 201, first.text
    order = first.json()
    assert order["status"] == "completed"
    assert order["order_id"] == order["id"] and order["order_id"].startswith("ord_")
    assert order["total"] == 124.96
    assert "x-idempotency-replayed" not in first.headers
    assert stock(stack, "prod-001") == before - 2

    replay = _post(stack, body, key)
    assert replay.status_code == 201, replay.text
    assert replay.headers["x-idempotency-replayed"] == "true"
    assert replay.headers["idempotent-replayed"] == "true"  # the older name, still sent
    assert replay.json() == order


def test_recorded_but_failed_order_is_202_compensated_and_replays_as_202(stack: ShopStack
                                                                        ) -> None:
    body, key = _study_order(f"study-{uuid.uuid4().hex[:8]}"), str(uuid.uuid4())
    before = stock(stack, "prod-004")
    set_chaos(stack, "payments", error_rate=1.0)
    try:
        failed = _post(stack, body, key)
    finally:
        clear_chaos(stack, "payments")
    assert failed.status_code == 202, failed.text
    order = failed.json()
    assert order["status"] == "payment_failed" and order["order_id"] == order["id"]
    assert order["reason"]
    # Failing it compensated it: the stock is back and any late charge is fenced off.
    assert downstream_state(stack, order["id"]) == ("voided", "released")
    assert stock(stack, "prod-004") == before
    late = httpx.post(f"{stack.url('payments')}/payments/charge", timeout=10,
                      json={"order_id": order["id"], "amount": order["total"]})
    assert late.status_code == 409 and late.json()["error"] == "order_voided", late.text

    replay = _post(stack, body, key)  # payments is healthy now: still the same failed order
    assert replay.status_code == 202, replay.text
    assert replay.headers["x-idempotency-replayed"] == "true"
    assert replay.json() == order


def test_inventory_failure_is_202_too(stack: ShopStack) -> None:
    body = {"customer_id": f"study-{uuid.uuid4().hex[:8]}",
            "items": [{"product_id": "prod-002", "quantity": 1, "unit_price": 3}]}
    set_chaos(stack, "inventory", error_rate=1.0)
    try:
        response = _post(stack, body, str(uuid.uuid4()))
    finally:
        clear_chaos(stack, "inventory")
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "inventory_failed"
    assert downstream_state(stack, response.json()["order_id"]) == (None, "released")

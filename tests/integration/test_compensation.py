"""Payments and inventory are idempotent per order id and fenceable, straight at the services:
a void refunds a charge once or leaves a tombstone that refuses a late charge (409); a
release gives stock back once or refuses a late reservation (409). Runs on both databases."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.integration.ledger import (
    clear_chaos,
    downstream_state,
    live_charges,
    set_chaos,
    stock,
)
from tests.integration.shopclient import new_customer, order_body
from tests.integration.shopstack import ShopStack

PRODUCT = "SKU-071"


def _order_id() -> str:
    return f"ord_test{uuid.uuid4().hex[:16]}"


def test_void_refunds_a_charge_once_and_fences_the_order(any_stack: ShopStack) -> None:
    payments = any_stack.url("payments")
    order_id = _order_id()
    with httpx.Client(base_url=payments, timeout=10) as client:
        before = client.get("/payments").json()
        assert client.post("/payments/charge",
                           json={"order_id": order_id, "amount": 12.5}).status_code == 201
        assert client.get("/payments").json()["count"] == before["count"] + 1
        voids = [client.post("/payments/void", json={"order_id": order_id}) for _ in range(3)]
        assert [v.status_code for v in voids] == [200, 200, 200]
        assert [v.json()["replayed"] for v in voids] == [False, True, True]
        assert voids[0].json()["status"] == "refunded" and voids[0].json()["amount"] == 12.5
        after = client.get("/payments").json()
        assert after["count"] == before["count"]
        assert after["refunded"] == before["refunded"] + 1
        again = client.post("/payments/charge", json={"order_id": order_id, "amount": 12.5})
        assert again.status_code == 409 and again.json()["error"] == "order_voided", again.text
        assert client.get(f"/payments/{order_id}").json()["status"] == "refunded"


def test_void_before_any_charge_leaves_a_tombstone(any_stack: ShopStack) -> None:
    payments = any_stack.url("payments")
    order_id = _order_id()
    charges = live_charges(any_stack)
    with httpx.Client(base_url=payments, timeout=10) as client:
        void = client.post("/payments/void", json={"order_id": order_id})
        assert void.status_code == 200 and void.json()["status"] == "voided", void.text
        late = client.post("/payments/charge", json={"order_id": order_id, "amount": 3.0})
        assert late.status_code == 409, late.text
    assert live_charges(any_stack) == charges


def test_concurrent_charges_and_voids_never_leave_money_taken(any_stack: ShopStack) -> None:
    """Races of retried charges against voids, per order: whatever interleaving, the end is
    no live charge, and no request fails with a 5xx."""
    payments = any_stack.url("payments")
    order_ids = [_order_id() for _ in range(10)]
    charges = live_charges(any_stack)

    def call(job: tuple[str, str]) -> int:
        kind, order_id = job
        path, body = (("/payments/charge", {"order_id": order_id, "amount": 1.0})
                      if kind == "charge" else ("/payments/void", {"order_id": order_id}))
        return httpx.post(payments + path, json=body, timeout=30).status_code

    jobs = [(kind, o) for o in order_ids for kind in ("charge", "void", "charge", "void")]
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(call, jobs))
    assert set(codes) <= {200, 201, 409}, codes
    assert live_charges(any_stack) == charges
    for order_id in order_ids:
        assert downstream_state(any_stack, order_id)[0] in ("refunded", "voided")


def test_release_gives_stock_back_once_and_fences_the_order(any_stack: ShopStack) -> None:
    inventory = any_stack.url("inventory")
    order_id = _order_id()
    before = stock(any_stack, PRODUCT)
    with httpx.Client(base_url=inventory, timeout=10) as client:
        lines = {"order_id": order_id, "items": [{"product_id": PRODUCT, "quantity": 4}]}
        assert client.post("/inventory/reserve", json=lines).status_code == 201
        assert client.post("/inventory/reserve", json=lines).status_code == 200  # a retry
        assert stock(any_stack, PRODUCT) == before - 4
        with ThreadPoolExecutor(4) as pool:  # concurrent compensations: stock back once
            releases = list(pool.map(
                lambda _: client.post("/inventory/release", json={"order_id": order_id}),
                range(4)))
        assert [r.status_code for r in releases] == [200] * 4
        assert sorted(r.json()["replayed"] for r in releases) == [False, True, True, True]
        assert stock(any_stack, PRODUCT) == before
        late = client.post("/inventory/reserve", json=lines)
        assert late.status_code == 409 and late.json()["error"] == "order_released", late.text
        assert stock(any_stack, PRODUCT) == before
        tomb = client.post("/inventory/release", json={"order_id": _order_id()})
        assert tomb.status_code == 200 and tomb.json()["status"] == "released"
        assert stock(any_stack, PRODUCT) == before


def test_compensation_endpoints_refuse_bad_input_with_422(any_stack: ShopStack) -> None:
    for service, path in (("payments", "/payments/void"), ("inventory", "/inventory/release")):
        for body in ({}, {"order_id": ""}, {"order_id": "x" * 65}, {"order_id": "x", "y": 1}):
            response = httpx.post(any_stack.url(service) + path, json=body, timeout=10)
            assert response.status_code == 422, (path, body, response.text)
            assert response.json()["error"] == "invalid_request"
    missing = httpx.get(f"{any_stack.url('inventory')}/inventory/reservations/nope", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def test_a_failed_order_compensates_only_what_may_have_happened(stack: ShopStack) -> None:
    """Refused outright (unknown product: 409 in one attempt): nothing was reserved or
    charged, so no release or void is sent and no tombstone written. Payments failing with
    503 on every attempt: a charge may exist as far as orders knows, so the order is voided
    (a tombstone) and its reservation released."""
    orders = stack.url("orders")
    refused = httpx.post(f"{orders}/orders", timeout=30,
                         json=order_body(new_customer("refused"), "no-such-product"))
    assert refused.status_code == 202 and refused.json()["status"] == "inventory_failed"
    assert downstream_state(stack, refused.json()["order_id"]) == (None, None)

    set_chaos(stack, "payments", error_rate=1.0)
    try:
        failed = httpx.post(f"{orders}/orders", json=order_body(new_customer("declined")),
                            timeout=30)
    finally:
        clear_chaos(stack, "payments")
    assert failed.status_code == 202 and failed.json()["status"] == "payment_failed"
    assert downstream_state(stack, failed.json()["order_id"]) == ("voided", "released")

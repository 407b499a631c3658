"""Idempotency keys: 500 concurrent POSTs with one key make exactly one order and one charge;
the same key with another body is refused with 422."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import httpx
import pytest
import redis

from tests.integration.shopclient import counts, events_of, new_customer, order_body, orders_of
from tests.integration.shopstack import ShopStack, metric_value
from tests.support import wait_for

N = 500


async def _burst(url: str, body: dict, key: str) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=N, max_keepalive_connections=N)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        return await asyncio.gather(*(
            client.post(f"{url}/orders", json=body, headers={"Idempotency-Key": key})
            for _ in range(N)))


@pytest.mark.parametrize("entry", ["gateway", "orders"])
def test_500_concurrent_posts_with_one_key_make_one_order_and_one_charge(
        stack: ShopStack, entry: str) -> None:
    """Through the gateway (which may shed or bulkhead some of the 500) and straight at
    orders (where all 500 race for the key in Redis)."""
    customer = new_customer("idem")
    body = order_body(customer, "SKU-011", 2, 5.0)
    key = f"idem-{uuid.uuid4().hex}"
    before = counts(stack)

    responses = asyncio.run(_burst(stack.url(entry), body, key))

    statuses = Counter(r.status_code for r in responses)
    fresh = [r for r in responses
             if r.status_code == 201 and r.headers.get("idempotent-replayed") != "true"]
    replays = [r for r in responses
               if r.status_code == 201 and r.headers.get("idempotent-replayed") == "true"]
    assert len(fresh) == 1, statuses
    order = fresh[0].json()
    assert order["status"] == "completed", order
    # Every replay is the very same response; every refusal is one the contract allows:
    # 409 (still in progress), 429 (gateway shedding), 503 (gateway bulkhead to orders full).
    assert all(r.json() == order for r in replays)
    allowed_errors = {409: "request_in_progress", 429: "overloaded", 503: "bulkhead_full"}
    for r in responses:
        if r.status_code != 201:
            assert allowed_errors.get(r.status_code) == r.json()["error"], (r.status_code, r.text)
    # Duplicates did reach orders (as 409 while the first ran, or replays once it finished).
    assert statuses[409] + len(replays) >= 1, statuses
    if entry == "orders":  # nothing in front of orders may refuse: only 409s and replays
        assert statuses[409] + len(replays) == N - 1, statuses

    # Exactly one order, one charge, and its two events.
    assert [o["id"] for o in orders_of(stack, customer)] == [order["id"]]
    after = counts(stack)
    assert after.orders == before.orders + 1
    assert after.charges == before.charges + 1
    assert httpx.get(f"{stack.url('payments')}/payments/{order['id']}",
                     timeout=10).status_code == 200
    events = wait_for(lambda: (e := events_of(stack, order["id"])) and len(e) >= 2 and e,
                      timeout=30, what="the order's events")
    assert len(events) == 2

    # Once completed, the key replays deterministically.
    again = httpx.post(f"{stack.url('gateway')}/orders", json=body,
                       headers={"Idempotency-Key": key}, timeout=30)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == order
    text = stack.metrics_text("orders")
    assert metric_value(text, "idempotency_conflicts_total") >= statuses[409]
    assert metric_value(text, "idempotency_hits_total") >= len(replays) + 1
    assert counts(stack).orders == after.orders
    # The stored response lives in Redis under idem:{key}, and expires (24 h) like every key.
    rdb = redis.Redis.from_url(stack.redis_url, socket_timeout=5)
    try:
        assert 0 < rdb.ttl(f"idem:{key}") <= 24 * 3600
    finally:
        rdb.close()


def test_same_key_with_a_different_body_is_422_and_changes_nothing(stack: ShopStack) -> None:
    customer = new_customer("idem422")
    key = f"idem-{uuid.uuid4().hex}"
    url = f"{stack.url('gateway')}/orders"
    first = httpx.post(url, json=order_body(customer, "SKU-012", 1),
                       headers={"Idempotency-Key": key}, timeout=30)
    assert first.status_code == 201, first.text
    before = counts(stack, "SKU-012")

    other = httpx.post(url, json=order_body(customer, "SKU-012", 5),
                       headers={"Idempotency-Key": key}, timeout=30)
    assert other.status_code == 422, other.text
    assert other.json()["error"] == "idempotency_key_reused"
    after = counts(stack, "SKU-012")
    assert (after.orders, after.charges, after.stock) == (before.orders, before.charges,
                                                          before.stock)
    assert len(orders_of(stack, customer)) == 1

"""Gateway load shedding: past SHOP_MAX_INFLIGHT, requests get 429 + Retry-After: 5 at once,
load_shed_total counts them, and health/metrics keep answering."""

from __future__ import annotations

import asyncio

import httpx

from tests.integration.shopclient import new_customer, order_body
from tests.integration.shopstack import ShopStack, metric_value
from tests.support import wait_for

MAX_INFLIGHT = 5
BURST = 20


async def _burst(url: str, customer: str) -> tuple[list[httpx.Response], httpx.Response]:
    limits = httpx.Limits(max_connections=BURST + 5)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        posts = [asyncio.create_task(client.post(f"{url}/orders",
                                                 json=order_body(customer, "SKU-061")))
                 for _ in range(BURST)]
        # Once the shed answers are back, the admitted five are still held by payments.
        while sum(1 for t in posts if t.done()) < BURST - MAX_INFLIGHT:
            await asyncio.wait(posts, return_when=asyncio.FIRST_COMPLETED, timeout=5)
        health = await client.get(f"{url}/health")
        return list(await asyncio.gather(*posts)), health


def test_small_max_inflight_sheds_with_429(stack: ShopStack) -> None:
    proc, port = stack.spawn("gateway", env={"SHOP_MAX_INFLIGHT": str(MAX_INFLIGHT)},
                             tag="gateway-small")
    url = f"http://127.0.0.1:{port}"
    try:
        assert metric_value(stack.metrics_text("gateway", port=port), "load_shed_total") == 0
        # Hold admitted requests open: each charge takes 1.5 s (under the 2 s hop timeout).
        response = httpx.post(f"{stack.url('payments')}/chaos/config",
                              headers=stack.admin_headers(),
                              json={"latency_ms": 1500, "ttl_s": 60}, timeout=10)
        assert response.status_code == 200, response.text

        responses, health = asyncio.run(_burst(url, new_customer("shed")))

        shed = [r for r in responses if r.status_code == 429]
        admitted = [r for r in responses if r.status_code != 429]
        # The first MAX_INFLIGHT are admitted and held 1.5 s; the rest arrive meanwhile (a
        # very slow client could get one more admitted as a slot frees: hence the slack).
        assert len(admitted) >= MAX_INFLIGHT, [r.status_code for r in responses]
        assert len(shed) >= BURST // 2, [r.status_code for r in responses]
        assert all(r.status_code == 201 and r.json()["status"] == "completed"
                   for r in admitted), [r.text for r in admitted]
        for r in shed:
            assert r.headers["retry-after"] == "5"
            assert r.json()["error"] == "overloaded"
        assert health.status_code == 200  # exempt from shedding while overloaded
        text = stack.metrics_text("gateway", port=port)
        assert metric_value(text, "load_shed_total") == len(shed)
        # Shed requests never reached orders: only admitted ones were forwarded.
        assert metric_value(text, "downstream_requests_total", to_service="orders") == \
            len(admitted)
    finally:
        proc.stop()
        wait_for(lambda: not proc.alive(), timeout=20, what="extra gateway to stop")

"""The gateway proxies path and query values encoded: any value is a 404/422 answer, never a
500, and no value can smuggle a parameter in or change which order orders looks up."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.integration.shopclient import new_customer, order_body
from tests.integration.shopstack import ShopStack

PRODUCT = "SKU-061"


def _order(stack: ShopStack, **headers: str) -> httpx.Response:
    response = httpx.post(f"{stack.url('gateway')}/orders", timeout=30, headers=headers,
                          json=order_body(new_customer("proxy"), PRODUCT))
    assert response.status_code == 201, response.text
    return response


@pytest.mark.parametrize("raw_path", [
    "/orders?status=%7F",
    "/orders?status=%C3%A9%20%2F%3F%23",
    "/orders?status=a%2Fb&limit=3",
    "/orders/%7F",
    "/orders/%C3%A9",
    "/orders/%2E%2E",
    "/orders/.%2E",
    "/orders/%2E",
    "/orders/a%2Fb",
    "/orders/a%3Fb",
    "/orders/a%23b",
    "/orders/%25",
])
def test_any_path_or_query_value_is_answered_not_a_500(stack: ShopStack, raw_path: str) -> None:
    response = httpx.get(stack.url("gateway") + raw_path, timeout=10)
    assert response.status_code in (200, 404), (raw_path, response.status_code, response.text)
    if raw_path.startswith("/orders?"):
        assert response.status_code == 200 and response.json()["count"] == 0, response.text
    else:  # never the list of orders (a dot-segment resolved away) nor another order
        assert response.status_code == 404, response.text
        assert response.json()["error"] in ("not_found", "http_error")


def test_breaker_reset_with_any_name_is_404_not_500(stack: ShopStack) -> None:
    for name in ("%7F", "a%2Fb", "a%3Fb", "%2E%2E", "payments%3Fx%3D1"):
        response = httpx.post(f"{stack.url('gateway')}/status/breakers/{name}/reset",
                              headers=stack.admin_headers(), timeout=10)
        assert response.status_code == 404, (name, response.text)
    # The names that exist still work through the same encoding.
    ok = httpx.post(f"{stack.url('gateway')}/status/breakers/payments/reset",
                    headers=stack.admin_headers(), timeout=10)
    assert ok.status_code == 200 and ok.json()["state"] == "closed", ok.text


@pytest.mark.parametrize("method,raw_path", [
    ("GET", "/orders?status=%00"),
    ("GET", "/orders?status=done%00"),
    ("GET", "/orders/%00"),
    ("GET", "/orders/ord_%00x"),
    ("POST", "/status/breakers/%00/reset"),
])
def test_nul_in_a_value_is_422_at_the_gateway(stack: ShopStack, method: str,
                                              raw_path: str) -> None:
    """PostgreSQL cannot compare text with NUL: forwarded, it was a 500 from orders that
    also counted against the gateway's breaker."""
    response = httpx.request(method, stack.url("gateway") + raw_path, timeout=10,
                             headers=stack.admin_headers())
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_request"


def test_nul_in_an_order_body_is_422_and_names_the_field(stack: ShopStack) -> None:
    body = order_body("nul\x00customer", PRODUCT)
    response = httpx.post(f"{stack.url('gateway')}/orders", json=body, timeout=10)
    assert response.status_code == 422, response.text
    assert "customer_id" in {d["field"] for d in response.json()["detail"]}
    body = order_body("nul-product", "SKU\x00061")
    response = httpx.post(f"{stack.url('gateway')}/orders", json=body, timeout=10)
    assert response.status_code == 422, response.text
    assert "items.0.product_id" in {d["field"] for d in response.json()["detail"]}


def test_a_query_value_cannot_smuggle_a_parameter(stack: ShopStack) -> None:
    for _ in range(3):
        _order(stack)
    smuggled = "/orders?limit=1&status=completed%26limit%3D3"
    through_gateway = httpx.get(stack.url("gateway") + smuggled, timeout=10)
    direct = httpx.get(stack.url("orders") + smuggled, timeout=10)
    assert through_gateway.status_code == direct.status_code == 200
    # The status really is the odd string "completed&limit=3": nothing has it.
    assert through_gateway.json()["count"] == direct.json()["count"] == 0
    # The same two parameters, sent plainly, are honoured.
    plain = httpx.get(f"{stack.url('gateway')}/orders",
                      params={"limit": 1, "status": "completed"}, timeout=10).json()
    assert plain["count"] == 1 and plain["orders"][0]["status"] == "completed"


def test_an_encoded_question_mark_does_not_truncate_the_order_id(stack: ShopStack) -> None:
    order_id = _order(stack).json()["order_id"]
    gateway = stack.url("gateway")
    assert httpx.get(f"{gateway}/orders/{order_id}", timeout=10).status_code == 200
    for suffix in ("%3Fb", "%23b", "%2Fx"):
        response = httpx.get(f"{gateway}/orders/{order_id}{suffix}", timeout=10)
        assert response.status_code == 404, (suffix, response.text)


@pytest.mark.parametrize("query", ["limit=abc", "limit=1.5", "limit=", "limit=%7F"])
def test_bad_limit_is_422_like_orders_itself(stack: ShopStack, query: str) -> None:
    for service in ("gateway", "orders"):
        response = httpx.get(f"{stack.url(service)}/orders?{query}", timeout=10)
        assert response.status_code == 422, (service, response.text)
        assert response.json()["error"] == "invalid_request"
        assert any("limit" in p["field"] for p in response.json()["detail"]), response.text


@pytest.mark.parametrize("header,value", [
    ("Idempotency-Key", "caf\xe9".encode("latin-1")),
    ("Idempotency-Key", b"two words"),
    ("Idempotency-Key", b"k" * 256),
    ("X-Correlation-ID", "\xfc".encode("latin-1")),
    ("X-Correlation-ID", b"c" * 129),
])
def test_unforwardable_headers_are_422(stack: ShopStack, header: str, value: bytes) -> None:
    response = httpx.post(f"{stack.url('gateway')}/orders", timeout=10,
                          json=order_body("proxy-bad-header", PRODUCT),
                          headers=[(header.encode(), value)])
    assert response.status_code == 422, response.text
    assert any(header in p["field"] for p in response.json()["detail"]), response.text


def test_absurd_deadline_header_is_ignored_not_a_500(stack: ShopStack) -> None:
    response = httpx.get(f"{stack.url('gateway')}/orders", params={"limit": 1},
                         headers={"X-Deadline": "9" * 5000}, timeout=10)
    assert response.status_code == 200, response.text


def test_a_replay_says_so_with_the_studys_header(stack: ShopStack) -> None:
    key = f"proxy-{uuid.uuid4().hex}"
    body = order_body(new_customer("proxy-replay"), PRODUCT)
    url = f"{stack.url('gateway')}/orders"
    first = httpx.post(url, json=body, headers={"Idempotency-Key": key}, timeout=30)
    assert first.status_code == 201, first.text
    assert "x-idempotency-replayed" not in first.headers
    again = httpx.post(url, json=body, headers={"Idempotency-Key": key}, timeout=30)
    assert again.status_code == 201, again.text
    assert again.json() == first.json()
    assert again.headers["x-idempotency-replayed"] == "true"
    assert again.headers["idempotent-replayed"] == "true"  # the older name, still sent
    # Without a client key there is nothing to replay for the client: never marked.
    fresh = [_order(stack) for _ in range(2)]
    assert all("x-idempotency-replayed" not in r.headers for r in fresh)


def test_order_routes_are_documented_with_their_errors(stack: ShopStack) -> None:
    spec = httpx.get(f"{stack.url('gateway')}/openapi.json", timeout=10).json()
    post = spec["paths"]["/orders"]["post"]["responses"]
    for status in ("201", "202", "400", "409", "413", "415", "422", "429", "503", "504"):
        assert status in post, sorted(post)
    error = spec["components"]["schemas"]["ErrorBody"]
    assert set(error["required"]) == {"error", "detail"}
    get_one = spec["paths"]["/orders/{order_id}"]["get"]["responses"]
    assert get_one["404"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ErrorBody")
    reset = spec["paths"]["/status/breakers/{downstream}/reset"]["post"]["responses"]
    assert {"401", "403", "404"} <= set(reset)


@pytest.mark.parametrize("change", [{"quantity": True}, {"quantity": False},
                                    {"unit_price": True}, {"product_id": 61}])
def test_gateway_takes_no_booleans_for_numbers(stack: ShopStack, change: dict) -> None:
    """Lax parsing made `"quantity": true` an order for 1 (a decimal string price stays
    accepted: the study's client sends one, see test_client_contract)."""
    body = order_body("proxy-strict", PRODUCT)
    body["items"][0].update(change)
    response = httpx.post(f"{stack.url('gateway')}/orders", json=body, timeout=10)
    assert response.status_code == 422, response.text
    field = next(iter(change))
    assert any(p["field"] == f"items.0.{field}" for p in response.json()["detail"]), (
        response.text)

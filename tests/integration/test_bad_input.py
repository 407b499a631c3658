"""Bad requests get a 4xx with a JSON reason and change nothing; past deadlines get 504."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.shopclient import counts, order_body
from tests.integration.shopstack import ShopStack, metric_value
from tests.support import free_port, wait_for

PRODUCT = "SKU-055"
GOOD = order_body("bad-input", PRODUCT, 2, 3.5)


def _with_item(**changes: object) -> dict:
    return {"customer_id": "bad-input", "items": [{**GOOD["items"][0], **changes}]}


BAD_JSON_BODIES = {
    "negative quantity": _with_item(quantity=-1),
    "zero quantity": _with_item(quantity=0),
    "quantity as text": _with_item(quantity="three"),
    "fractional quantity": _with_item(quantity=1.5),
    "negative price": _with_item(unit_price=-2),
    "price as text": _with_item(unit_price="cheap"),
    "missing product": {"customer_id": "c", "items": [{"quantity": 1, "unit_price": 1}]},
    "items not a list": {"customer_id": "c", "items": "SKU-001"},
    "no items": {"customer_id": "c", "items": []},
    "customer as number": {**GOOD, "customer_id": 42},
    "empty customer": {**GOOD, "customer_id": ""},
    "unknown field": {**GOOD, "coupon": "FREE"},
    "body is a list": [GOOD],
    "body is null": None,
}


@pytest.fixture
def unchanged(stack: ShopStack) -> Iterator[ShopStack]:
    """Asserts after the test that no order, charge, event or stock changed."""
    # An earlier test's outbox events may still be on their way to notifications: counting
    # before they land would blame this test for them.
    wait_for(lambda: httpx.get(f"{stack.url('orders')}/outbox", timeout=5).json()["pending"]
             == 0, timeout=60, what="the outbox to drain before counting")
    before = counts(stack, PRODUCT)
    yield stack
    assert counts(stack, PRODUCT) == before


@pytest.mark.parametrize("service", ["gateway", "orders"])
@pytest.mark.parametrize("case", sorted(BAD_JSON_BODIES))
def test_invalid_order_bodies_are_422(unchanged: ShopStack, service: str, case: str) -> None:
    response = httpx.post(f"{unchanged.url(service)}/orders", json=BAD_JSON_BODIES[case],
                          timeout=10)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid_request" and body["detail"]
    assert "Traceback" not in response.text


@pytest.mark.parametrize("raw", [b'{"customer_id": "c", "items": [', b"not json at all",
                                 b"\xff\xfe\x00garbage", b""])
def test_malformed_json_is_4xx(unchanged: ShopStack, raw: bytes) -> None:
    response = httpx.post(f"{unchanged.url('gateway')}/orders", content=raw,
                          headers={"Content-Type": "application/json"}, timeout=10)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"] in ("invalid_request", "http_error")
    assert "Traceback" not in response.text


def _oversized() -> bytes:
    body = {"customer_id": "big", "items": [
        {"product_id": PRODUCT, "quantity": 1, "unit_price": 1.0, "pad": "x" * 1000}
        for _ in range(70)]}
    raw = json.dumps(body).encode()
    assert len(raw) > 64 * 1024
    return raw


@pytest.mark.parametrize("service", ["gateway", "orders", "payments", "notifications"])
def test_oversized_body_is_413(unchanged: ShopStack, service: str) -> None:
    path = {"gateway": "/orders", "orders": "/orders", "payments": "/payments/charge",
            "notifications": "/events"}[service]
    response = httpx.post(f"{unchanged.url(service)}{path}", content=_oversized(),
                          headers={"Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 413, response.text
    assert response.json()["error"] == "payload_too_large"


def test_oversized_chunked_body_is_413(unchanged: ShopStack) -> None:
    """No Content-Length to check up front: the limit must hold while the body streams in."""
    raw = _oversized()

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(raw), 4096):
            yield raw[i:i + 4096]

    response = httpx.post(f"{unchanged.url('gateway')}/orders", content=chunks(),
                          headers={"Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 413, response.text
    assert response.json()["error"] == "payload_too_large"


def test_small_chunked_body_still_works(stack: ShopStack) -> None:
    raw = json.dumps(order_body("chunked-ok", PRODUCT)).encode()
    response = httpx.post(f"{stack.url('gateway')}/orders", content=iter([raw[:10], raw[10:]]),
                          headers={"Content-Type": "application/json"}, timeout=30)
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "completed"


@pytest.mark.parametrize("service", ["gateway", "orders"])
@pytest.mark.parametrize("header,value", [
    ("Idempotency-Key", b""), ("Idempotency-Key", b"k" * 256),
    ("Idempotency-Key", b"caf\xe9"),
    # orders forwards the correlation id: a byte httpx cannot put in a header, or a value
    # longer than its column (128), was a 500 after the order had been written.
    ("X-Correlation-ID", b"caf\xe9"), ("X-Correlation-ID", b"c" * 129),
])
def test_bad_key_or_correlation_header_is_422(unchanged: ShopStack, service: str, header: str,
                                              value: bytes) -> None:
    response = httpx.post(f"{unchanged.url(service)}/orders", json=GOOD,
                          headers={header: value}, timeout=10)
    assert response.status_code == 422, response.text


@pytest.mark.parametrize("path,body", [
    ("/payments/charge", {"order_id": "x", "amount": -1}),
    ("/payments/charge", {"order_id": "", "amount": 1}),
    ("/payments/charge", {"order_id": "x", "amount": "ten"}),
])
def test_invalid_charges_are_422(unchanged: ShopStack, path: str, body: dict) -> None:
    response = httpx.post(f"{unchanged.url('payments')}{path}", json=body, timeout=10)
    assert response.status_code == 422, response.text


@pytest.mark.parametrize("items", [[{"product_id": PRODUCT, "quantity": -5}],
                                   [{"product_id": PRODUCT, "quantity": "many"}], []])
def test_invalid_reservations_are_422(unchanged: ShopStack, items: list) -> None:
    response = httpx.post(f"{unchanged.url('inventory')}/inventory/reserve",
                          json={"order_id": "ord_bad", "items": items}, timeout=10)
    assert response.status_code == 422, response.text


def test_invalid_event_is_422(unchanged: ShopStack) -> None:
    response = httpx.post(f"{unchanged.url('notifications')}/events",
                          json={"type": "order.created"}, timeout=10)
    assert response.status_code == 422, response.text


@pytest.mark.parametrize("service", ["gateway", "orders"])
def test_past_deadline_is_504_without_work(unchanged: ShopStack, service: str) -> None:
    route = {"service": "orders", "method": "POST", "route": "/orders"}
    orders_posts = metric_value(unchanged.metrics_text("orders"), "http_requests_total",
                                **route)
    response = httpx.post(f"{unchanged.url(service)}/orders", json=GOOD,
                          headers={"X-Deadline": "1000"}, timeout=10)  # 1970
    assert response.status_code == 504, response.text
    assert response.json()["error"] == "deadline_exceeded"
    # Orders' POST /orders handler never ran (the 504 is answered before routing).
    assert metric_value(unchanged.metrics_text("orders"), "http_requests_total",
                        **route) == orders_posts


# -- writes must be JSON (no cross-site form or text/plain posts) ---------------------------
NOT_JSON = {
    "text/plain": {"Content-Type": "text/plain"},
    "form": {"Content-Type": "application/x-www-form-urlencoded"},
    "multipart": {"Content-Type": "multipart/form-data; boundary=x"},
    "no content type": {},
    "json in another charset": {"Content-Type": "application/json; charset=latin-1"},
    "json suffix type": {"Content-Type": "application/problem+json"},
}


@pytest.mark.parametrize("case", sorted(NOT_JSON))
def test_cross_site_order_without_json_content_type_is_415(unchanged: ShopStack,
                                                           case: str) -> None:
    """A page on another origin can send these without a CORS preflight; none may order."""
    headers = {**NOT_JSON[case], "Origin": "http://evil.example"}
    for service in ("gateway", "orders"):
        # httpx adds no Content-Type for raw content: only the one chosen here is sent.
        response = httpx.post(f"{unchanged.url(service)}/orders", headers=headers, timeout=10,
                              content=json.dumps(GOOD).encode())
        assert response.status_code == 415, (service, response.text)
        body = response.json()
        assert body["error"] == "unsupported_media_type"
        assert "application/json" in body["detail"]


@pytest.mark.parametrize("service,path", [
    ("payments", "/payments/charge"),
    ("inventory", "/inventory/reserve"),
    ("notifications", "/events"),
    ("payments", "/chaos/config"),
    ("inventory", "/chaos/config"),
])
def test_every_service_refuses_non_json_writes(unchanged: ShopStack, service: str,
                                               path: str) -> None:
    response = httpx.post(f"{unchanged.url(service)}{path}", timeout=10,
                          headers={**unchanged.admin_headers(), "Content-Type": "text/plain"},
                          content=b'{"order_id": "ord_text", "amount": 1}')
    assert response.status_code == 415, response.text
    assert response.json()["error"] == "unsupported_media_type"


def test_json_with_utf8_charset_is_accepted(stack: ShopStack) -> None:
    raw = json.dumps(order_body("charset-ok", PRODUCT)).encode()
    response = httpx.post(f"{stack.url('gateway')}/orders", content=raw, timeout=30,
                          headers={"Content-Type": "Application/JSON; charset=UTF-8"})
    assert response.status_code == 201, response.text


def test_openapi_documents_every_error_with_the_error_body(stack: ShopStack) -> None:
    """What the 4xx tests above get is what each service's OpenAPI promises."""
    for service in ("gateway", "orders", "payments", "inventory", "notifications"):
        spec = httpx.get(f"{stack.url(service)}/openapi.json", timeout=10).json()
        assert "ErrorBody" in spec["components"]["schemas"], service
        writes = 0
        for path, item in spec["paths"].items():
            for method, operation in item.items():
                responses = operation["responses"]
                for status in ("413", "504"):
                    assert status in responses, (service, method, path)
                if method in ("post", "put") and "requestBody" in operation:
                    writes += 1
                    for status in ("400", "415", "422"):
                        assert status in responses, (service, method, path, status)
                for status, response in responses.items():
                    if int(status) >= 400:
                        schema = response["content"]["application/json"]["schema"]
                        assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (
                            service, method, path, status)
        assert writes >= 1, service


@pytest.mark.parametrize("name,value", [("SHOP_RECOVERY_GRACE_S", "soon"),
                                        ("SHOP_RECOVERY_INTERVAL_S", "0")])
def test_bad_recovery_setting_stops_orders_with_a_clear_message(
        shop: ShopStack, tmp_path: Path, name: str, value: str) -> None:
    env = shop.service_env("orders", {name: value, "SHOP_DATA_DIR": str(tmp_path / "data")})
    result = subprocess.run([sys.executable, "-m", "shop.serve", "orders", "--port",
                             str(free_port())], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2, result.stderr
    assert name in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not (tmp_path / "data").exists()  # refused before touching any state

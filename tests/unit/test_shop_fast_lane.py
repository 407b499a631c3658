"""The fast lane (shop.web.FastLane) answers exactly as FastAPI does for the same route: the
same app is called with the route on the lane and off it, over real ASGI, and every answer
(status, body, headers) must match, for valid requests and for each kind of bad one."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from fastapi import Request
from fastapi.responses import JSONResponse
from shop.orders import OrderRequest
from shop.settings import ShopSettings
from shop.web import (
    CORRELATION_HEADER,
    IDEMPOTENCY_HEADER,
    ApiError,
    CorrelationId,
    IdempotencyKey,
    create_app,
    fast_route,
)

ORDER = {"customer_id": "c1", "items": [{"product_id": "SKU-001", "quantity": 2,
                                         "unit_price": "57.23"}]}


def build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lane: bool):  # noqa: ANN201
    monkeypatch.setenv("SHOP_DATA_DIR", str(tmp_path))

    async def health() -> tuple[str, dict]:
        return "ok", {}

    app = create_app(ShopSettings.from_env("orders"), health)

    @app.post("/orders", status_code=201)
    async def create_order(body: OrderRequest, request: Request,
                           idempotency_key: IdempotencyKey = None,
                           correlation_id: CorrelationId = None) -> JSONResponse:
        if body.customer_id == "refuse":
            raise ApiError(409, "request_in_progress", "busy", headers={"Retry-After": "1"})
        if body.customer_id == "crash":
            raise RuntimeError("a bug")
        return JSONResponse({"order": body.model_dump(), "key": idempotency_key,
                             "cid": correlation_id, "raw": len(await request.body()),
                             "route": request.scope["route"].path}, 201,
                            headers={"X-Correlation-ID": correlation_id or ""})

    if lane:
        fast_route(app, "POST", "/orders", create_order, OrderRequest,
                   {"idempotency_key": IDEMPOTENCY_HEADER, "correlation_id": CORRELATION_HEADER})
    return app


CASES: list[tuple[str, bytes, list[tuple[str, str]]]] = [
    ("valid", json.dumps(ORDER).encode(), [("Idempotency-Key", "k-1")]),
    ("valid, both headers", json.dumps(ORDER).encode(),
     [("Idempotency-Key", "k-2"), ("X-Correlation-ID", "corr_1")]),
    ("no headers", json.dumps(ORDER).encode(), []),
    ("bad json", b'{"customer_id": ', []),
    ("empty body", b"", []),
    ("not an object", b"[1, 2]", []),
    ("extra field", json.dumps({**ORDER, "x": 1}).encode(), []),
    ("boolean quantity", json.dumps({"customer_id": "c", "items": [
        {"product_id": "p", "quantity": True, "unit_price": 1}]}).encode(), []),
    ("key with a space", json.dumps(ORDER).encode(), [("Idempotency-Key", "a b")]),
    ("key too long", json.dumps(ORDER).encode(), [("Idempotency-Key", "k" * 256)]),
    ("empty key", json.dumps(ORDER).encode(), [("Idempotency-Key", "")]),
    ("key twice", json.dumps(ORDER).encode(), [("Idempotency-Key", "a"), ("Idempotency-Key", "b")]),
    ("correlation id too long", json.dumps(ORDER).encode(), [("X-Correlation-ID", "c" * 129)]),
    ("ApiError", json.dumps({**ORDER, "customer_id": "refuse"}).encode(), []),
]


async def _answer(app, body: bytes, headers: list[tuple[str, str]]) -> tuple:  # noqa: ANN001
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        response = await client.post("/orders", content=body, headers=[
            ("Content-Type", "application/json"), *headers])
    return (response.status_code, response.content,
            sorted((k, v) for k, v in response.headers.items() if k != "content-length"))


@pytest.mark.parametrize(("case", "body", "headers"), CASES, ids=[c[0] for c in CASES])
def test_fast_lane_answers_like_fastapi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        case: str, body: bytes,
                                        headers: list[tuple[str, str]]) -> None:
    plain = asyncio.run(_answer(build(tmp_path, monkeypatch, lane=False), body, headers))
    fast = asyncio.run(_answer(build(tmp_path, monkeypatch, lane=True), body, headers))
    assert fast == plain
    if case.startswith("valid"):
        assert plain[0] == 201 and json.loads(plain[1])["route"] == "/orders"
        assert json.loads(plain[1])["raw"] == len(body)  # the body is still readable


def test_unexpected_exception_is_the_apps_500(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    body = json.dumps({**ORDER, "customer_id": "crash"}).encode()
    plain = asyncio.run(_answer(build(tmp_path, monkeypatch, lane=False), body, []))
    fast = asyncio.run(_answer(build(tmp_path, monkeypatch, lane=True), body, []))
    assert fast == plain
    assert plain[0] == 500 and json.loads(plain[1])["error"] == "internal"


def test_a_route_must_be_declared_before_it_joins_the_lane(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = build(tmp_path, monkeypatch, lane=False)

    async def nowhere(body: OrderRequest) -> JSONResponse:
        return JSONResponse({})

    with pytest.raises(ValueError, match="declare POST /nowhere"):
        fast_route(app, "POST", "/nowhere", nowhere, OrderRequest)

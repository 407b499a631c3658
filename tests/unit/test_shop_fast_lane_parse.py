"""The fast lane validates a body with pydantic's JSON parser (`model_validate_json`) where
FastAPI does `json.loads` then `model_validate`. That is only safe if the first accepts no body
the second refuses, and reads every body both accept to the same values: whatever it refuses
goes to FastAPI, which answers as before. Checked here for every model on a fast lane, over
bodies chosen to hit the differences between the two parsers."""

from __future__ import annotations

import json
from typing import Any

import pytest
from shop.inventory import ReserveRequest
from shop.notifications import EventBatch
from shop.orders import OrderRequest
from shop.payments import ChargeRequest

STRINGS = ['"a"', '"a\\ud800b"', '"\\ud83d\\ude00"', '"a\\u0000b"', '"a\x01b"', '"\\u00e9"',
           '"\xe9"', '""', '"' + "x" * 70 + '"', "1", "null", "true", '"a\\"b"']
NUMBERS = ["1", "-0", "0", "2.0", "2.5", '"2"', '"57.23"', "1e2", "1E400", "1.5e-400", "NaN",
           "Infinity", "-Infinity", "true", "false", "null", "01", "12345678901234567890123",
           "1.0000000000000000000001", "[1]", '"1_000"', '" 7 "', "1000", "1001"]


def _bodies() -> list[tuple[Any, bytes]]:
    out: list[tuple[Any, bytes]] = []
    for s in STRINGS:
        for n in NUMBERS:
            out.append((ChargeRequest, f'{{"order_id": {s}, "amount": {n}}}'.encode()))
            out.append((OrderRequest, f'{{"customer_id": {s}, "items": [{{"product_id": "p", '
                                      f'"quantity": {n}, "unit_price": {n}}}]}}'.encode()))
            out.append((ReserveRequest, f'{{"order_id": "o", "items": [{{"product_id": {s}, '
                                        f'"quantity": {n}}}]}}'.encode()))
            out.append((EventBatch, f'{{"events": [{{"id": {s}, "type": "t", "payload": '
                                    f'{{"x": {n}, "y": [{n}, {{"z": {s}}}]}}}}]}}'.encode()))
    base = b'{"order_id": "a", "amount": 1}'
    out += [(ChargeRequest, b) for b in (
        base, b"\xef\xbb\xbf" + base, base.decode().encode("utf-16"),
        base.decode().encode("utf-32"), b" " + base + b" \n", base + b"\x00", base + b"x",
        b'{"order_id": "a", "order_id": "b", "amount": 1}', b'{"order_id": "a", "amount": 1,}',
        b"{'order_id': 'a', 'amount': 1}", b'{"order_id": "\xff", "amount": 1}',
        b'{"order_id": "\xed\xa0\x80", "amount": 1}', b'{"order_id": "a", "amount": 1, "x": 1}',
        b"", b"null", b"[]", b'{"order_id": "a"}')]
    out += [(EventBatch, b'{"events": [{"id": "e", "type": "t", "payload": {"k": 1, "k": 2}}]}'),
            (EventBatch, b'{"events": [{"id": "e", "type": "t", "extra": 1}]}'),
            (EventBatch, b'{"events": []}')]
    return out


def _python_path(model: Any, body: bytes) -> Any:
    try:
        return ("ok", model.model_validate(json.loads(body)).model_dump())
    except Exception as exc:  # noqa: BLE001
        return ("refused", type(exc).__name__)


def _json_path(model: Any, body: bytes) -> Any:
    try:
        return ("ok", model.model_validate_json(body).model_dump())
    except Exception as exc:  # noqa: BLE001
        return ("refused", type(exc).__name__)


@pytest.mark.parametrize("model", [ChargeRequest, OrderRequest, ReserveRequest, EventBatch],
                         ids=lambda m: m.__name__)
def test_what_the_fast_parse_accepts_fastapi_accepts_alike(model: Any) -> None:
    bodies = [b for m, b in _bodies() if m is model]
    accepted = 0
    for body in bodies:
        fast = _json_path(model, body)
        if fast[0] != "ok":
            continue  # goes to FastAPI unchanged
        accepted += 1
        assert _python_path(model, body) == fast, body
    assert accepted > 0  # the corpus does reach the accepting side


"""Payment / inventory faults: visible in Redis (value, TTL), in the services' behaviour, in
`chaos status` and `chaosctl health`; they expire by their TTL; each action is audited."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from tests.e2e.chaos_support import audit_lines, chaos_keys, cli_json
from tests.support import wait_for


def _active_in_service(stack: Any, service: str, fault: str, value: float) -> bool:
    """The service's own view (same half-second cache its handlers use) shows the fault."""
    body = httpx.get(f"{stack.url(service)}/health", timeout=5).json()
    return (body["dependencies"].get("chaos") or {}).get(fault) == value


def _inject(stack: Any, *args: str) -> dict[str, Any]:
    rc, out = cli_json(stack, "inject", *args)
    assert rc == 0, out
    return out


def _assert_listed(stack: Any, key: str, value: float) -> None:
    rc, status = cli_json(stack, "chaos", "status")
    assert rc == 1 and not status["clean"]
    [item] = [f for f in status["faults"] if f["target"] == key]
    assert item["value"] == value and item["ttl_s"] > 0
    assert item["source"] and item["source"]["command"].startswith("chaosctl inject")
    rc, health = cli_json(stack, "health", timeout=60)
    assert rc == 1
    assert key in [c["key"] for c in health["chaos"]]
    assert any(key in problem for problem in health["problems"])


def test_payment_errors_rate_within_tolerance(chaos_stack: Any) -> None:
    stack = chaos_stack
    before = len(audit_lines(stack))
    out = _inject(stack, "payment-errors", "--rate", "0.2", "--ttl", "5m")
    assert out["keys"]["chaos:payments:error_rate"]["value"] == 0.2
    value, ttl = chaos_keys(stack)["chaos:payments:error_rate"]
    assert float(value) == 0.2 and 0 < ttl <= 300
    _assert_listed(stack, "chaos:payments:error_rate", 0.2)
    wait_for(lambda: _active_in_service(stack, "payments", "error_rate", 0.2), 10,
             what="payments sees the error rate")
    failures = 0
    with httpx.Client(base_url=stack.url("payments"), timeout=10) as client:
        for _ in range(500):
            r = client.post("/payments/charge",
                            json={"order_id": f"chaos-{uuid.uuid4().hex}", "amount": 1.0})
            assert r.status_code in (201, 503), r.text
            if r.status_code == 503:
                assert r.json()["error"] == "injected_failure"
                failures += 1
    # 0.2 +/- 0.07 is about four standard deviations of a binomial(500, 0.2).
    assert 0.13 <= failures / 500 <= 0.27, failures
    entries = audit_lines(stack)[before:]
    assert [(e["action"], e["fault"], e["value"], e["ttl_s"], e["outcome"]) for e in entries] \
        == [("inject", "payment-errors", 0.2, 300, "ok")]


def test_payment_latency_adds_delay(chaos_stack: Any) -> None:
    stack = chaos_stack
    _inject(stack, "payment-latency", "--ms", "400")
    value, ttl = chaos_keys(stack)["chaos:payments:latency_ms"]
    assert int(value) == 400 and ttl > 0
    _assert_listed(stack, "chaos:payments:latency_ms", 400)
    wait_for(lambda: _active_in_service(stack, "payments", "latency_ms", 400.0), 10,
             what="payments sees the latency")
    with httpx.Client(base_url=stack.url("payments"), timeout=10) as client:
        for _ in range(3):
            start = time.perf_counter()
            r = client.post("/payments/charge",
                            json={"order_id": f"chaos-{uuid.uuid4().hex}", "amount": 1.0})
            elapsed = time.perf_counter() - start
            assert r.status_code == 201
            assert elapsed >= 0.38, elapsed  # a lower bound: the injected sleep


def test_inventory_lock_queues_reservations(chaos_stack: Any) -> None:
    stack = chaos_stack
    hold_ms, n = 300, 4
    _inject(stack, "inventory-lock", "--ms", str(hold_ms))
    value, ttl = chaos_keys(stack)["chaos:inventory:lock_contention_ms"]
    assert int(value) == hold_ms and ttl > 0
    _assert_listed(stack, "chaos:inventory:lock_contention_ms", hold_ms)
    wait_for(lambda: _active_in_service(stack, "inventory", "lock_contention_ms",
                                        float(hold_ms)), 10, what="inventory sees the lock")

    def reserve(_: int) -> tuple[int, float]:
        start = time.perf_counter()
        r = httpx.post(f"{stack.url('inventory')}/inventory/reserve", timeout=30,
                       json={"order_id": f"chaos-{uuid.uuid4().hex}",
                             "items": [{"product_id": "SKU-001", "quantity": 1}]})
        return r.status_code, time.perf_counter() - start

    with ThreadPoolExecutor(n) as pool:
        results = list(pool.map(reserve, range(n)))
    assert all(code == 201 for code, _ in results), results
    # They queue behind one lock: the last one waited for all n holds.
    assert max(t for _, t in results) >= 0.9 * n * hold_ms / 1000, results


def test_inventory_errors(chaos_stack: Any) -> None:
    stack = chaos_stack
    _inject(stack, "inventory-errors", "--rate", "0.5")
    value, ttl = chaos_keys(stack)["chaos:inventory:error_rate"]
    assert float(value) == 0.5 and ttl > 0
    _assert_listed(stack, "chaos:inventory:error_rate", 0.5)
    wait_for(lambda: _active_in_service(stack, "inventory", "error_rate", 0.5), 10,
             what="inventory sees the error rate")
    codes = []
    with httpx.Client(base_url=stack.url("inventory"), timeout=10) as client:
        for _ in range(200):
            codes.append(client.post("/inventory/reserve", json={
                "order_id": f"chaos-{uuid.uuid4().hex}",
                "items": [{"product_id": "SKU-002", "quantity": 1}]}).status_code)
    assert set(codes) <= {201, 503}
    assert 0.38 <= codes.count(503) / 200 <= 0.62, codes.count(503)


def test_ttl_expiry_clears_with_no_command(chaos_stack: Any) -> None:
    stack = chaos_stack
    # The service's answer to the POST is read back from Redis at set time: value and TTL.
    # (A separate read could already be too late on a loaded machine: the TTL is short.)
    for args, key in ((["payment-errors", "--rate", "0.3"], "chaos:payments:error_rate"),
                      (["inventory-lock", "--ms", "100"], "chaos:inventory:lock_contention_ms")):
        out = _inject(stack, *args, "--ttl", "2s")
        assert out["keys"][key]["value"] == float(args[-1]) and 0 < out["keys"][key]["ttl_s"] <= 2
    # Every key set has an expiry (TTL -1 would be a fault that never ends); whole seconds,
    # so a key in its last half second reads 0.
    assert all(0 <= ttl <= 2 for _, ttl in chaos_keys(stack).values())
    wait_for(lambda: chaos_keys(stack) == {}, 15, what="the keys to expire by their TTL")
    rc, status = cli_json(stack, "chaos", "status")
    assert rc == 0 and status["clean"] and status["faults"] == []


def test_clear_one_target_and_audit(chaos_stack: Any) -> None:
    stack = chaos_stack
    before = len(audit_lines(stack))
    _inject(stack, "payment-errors", "--rate", "0.2")
    _inject(stack, "payment-latency", "--ms", "50")
    rc, out = cli_json(stack, "chaos", "clear", "payment-latency")
    assert rc == 0 and out["ok"]
    assert set(chaos_keys(stack)) == {"chaos:payments:error_rate"}  # only the target went
    rc, out = cli_json(stack, "chaos", "clear", "payments")
    assert rc == 0 and out["ok"] and chaos_keys(stack) == {}
    rc, out = cli_json(stack, "chaos", "clear", "payments")  # idempotent
    assert rc == 0 and out["ok"] and out["actions"] == []
    entries = audit_lines(stack)[before:]
    assert [(e["action"], e["fault"] or e["target"], e["outcome"]) for e in entries] == [
        ("inject", "payment-errors", "ok"), ("inject", "payment-latency", "ok"),
        ("clear", "payment-latency", "ok"), ("clear", "payments", "ok"),
        ("clear", "payments", "ok")]
    for e in entries:
        assert e["user"] and e["time"] and e["command"].startswith("chaosctl ")
    rc, log = cli_json(stack, "chaos", "log", "--tail", "2")
    assert rc == 0 and [e["action"] for e in log] == ["clear", "clear"]

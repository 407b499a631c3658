"""Chaos config over HTTP and in Redis: set, read back with TTLs, validate, clear; admin rules."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from tests.integration.shopstack import ShopStack

CHAOS_KEYS = ("chaos:payments:error_rate", "chaos:payments:latency_ms",
              "chaos:inventory:lock_contention_ms", "chaos:inventory:error_rate")


@pytest.fixture
def rdb(stack: ShopStack) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(stack.redis_url, decode_responses=True, socket_timeout=5)
    yield client
    client.close()


def _snapshot(rdb: redis.Redis) -> dict[str, Any]:
    return {key: rdb.get(key) for key in CHAOS_KEYS}


def _all_chaos_keys_have_ttl(rdb: redis.Redis) -> None:
    keys = list(rdb.scan_iter("chaos:*"))
    assert set(keys) <= set(CHAOS_KEYS), keys
    for key in keys:
        assert rdb.ttl(key) > 0, f"{key} has no TTL"


def test_set_read_and_clear_chaos_with_ttls(stack: ShopStack, rdb: redis.Redis) -> None:
    payments, inventory = stack.url("payments"), stack.url("inventory")
    with httpx.Client(timeout=10) as client:
        empty = client.get(f"{payments}/chaos/config").json()
        assert empty == {"service": "payments", "faults": {
            "error_rate": {"key": "chaos:payments:error_rate", "value": None, "ttl_s": None},
            "latency_ms": {"key": "chaos:payments:latency_ms", "value": None, "ttl_s": None}}}

        set_rate = client.post(f"{payments}/chaos/config", headers=stack.admin_headers(),
                               json={"error_rate": 0.2, "ttl_s": 600})
        assert set_rate.status_code == 200, set_rate.text
        fault = set_rate.json()["faults"]["error_rate"]
        assert fault["value"] == 0.2 and 0 < fault["ttl_s"] <= 600
        assert rdb.get("chaos:payments:error_rate") == "0.2"
        assert 0 < rdb.ttl("chaos:payments:error_rate") <= 600

        # PUT with the other header form; no ttl_s means the 15-minute default.
        set_latency = client.put(f"{payments}/chaos/config",
                                 headers={"X-Admin-Token": stack.admin_token},
                                 json={"latency_ms": 250})
        assert set_latency.status_code == 200, set_latency.text
        assert rdb.get("chaos:payments:latency_ms") == "250"
        assert 600 < rdb.ttl("chaos:payments:latency_ms") <= 900

        set_inv = client.post(f"{inventory}/chaos/config", headers=stack.admin_headers(),
                              json={"lock_contention_ms": 100, "error_rate": 0.05})
        assert set_inv.status_code == 200, set_inv.text
        assert rdb.get("chaos:inventory:lock_contention_ms") == "100"
        assert rdb.get("chaos:inventory:error_rate") == "0.05"
        _all_chaos_keys_have_ttl(rdb)
        if shutil.which("redis-cli"):  # the runbook's own check
            out = subprocess.run(["redis-cli", "-p", str(stack.ports["redis"]), "ttl",
                                  "chaos:inventory:lock_contention_ms"],
                                 capture_output=True, text=True, timeout=10).stdout
            assert int(out.strip()) > 0

        read = client.get(f"{payments}/chaos/config").json()["faults"]
        assert read["latency_ms"]["value"] == 250 and read["latency_ms"]["ttl_s"] > 0
        health = client.get(f"{payments}/health").json()
        assert health["status"] == "degraded"
        assert health["dependencies"]["chaos"] == {"error_rate": 0.2, "latency_ms": 250.0}

        # DELETE needs no token; ?fault= clears just one key.
        one = client.delete(f"{payments}/chaos/config", params={"fault": "latency_ms"})
        assert one.status_code == 200
        assert one.json() == {"service": "payments", "cleared": ["chaos:payments:latency_ms"]}
        assert rdb.get("chaos:payments:latency_ms") is None
        assert rdb.get("chaos:payments:error_rate") == "0.2"
        assert client.delete(f"{payments}/chaos/config", params={"fault": "nope"}
                             ).status_code == 422

        for url, service in ((payments, "payments"), (inventory, "inventory")):
            cleared = client.delete(f"{url}/chaos/config")
            assert cleared.status_code == 200
            assert set(cleared.json()["cleared"]) == {k for k in CHAOS_KEYS if service in k}
        assert _snapshot(rdb) == dict.fromkeys(CHAOS_KEYS)
        assert client.get(f"{payments}/health").json()["status"] == "ok"


def test_chaos_writes_need_the_token_and_a_loopback_host(
        stack: ShopStack, rdb: redis.Redis) -> None:
    with httpx.Client(timeout=10) as client:
        for url in (stack.url("payments"), stack.url("inventory")):
            body = {"error_rate": 0.5}
            no_token = client.post(f"{url}/chaos/config", json=body)
            assert no_token.status_code == 401
            assert "admin token" in no_token.json()["detail"]
            wrong = client.post(f"{url}/chaos/config", json=body,
                                headers={"Authorization": "Bearer not-the-token"})
            assert wrong.status_code == 401
            foreign = client.post(f"{url}/chaos/config", json=body,
                                  headers={**stack.admin_headers(), "Host": "shop.example.com"})
            assert foreign.status_code == 403
            assert stack.admin_token not in no_token.text + wrong.text + foreign.text
        assert _snapshot(rdb) == dict.fromkeys(CHAOS_KEYS)

        # Breaker resets are admin endpoints too.
        reset = f"{stack.url('gateway')}/status/breakers/payments/reset"
        assert client.post(reset).status_code == 401
        assert client.post(reset, headers={**stack.admin_headers(),
                                           "Host": "10.1.2.3:8000"}).status_code == 403
        assert client.post(reset, headers=stack.admin_headers()).status_code == 200


@pytest.mark.parametrize("service,body", [
    ("payments", {"error_rate": 1.5}),
    ("payments", {"error_rate": -0.1}),
    ("payments", {"latency_ms": -5}),
    ("payments", {"latency_ms": 60001}),
    ("payments", {"error_rate": "lots"}),
    ("payments", {"error_rate": True}),
    ("payments", {"latency_ms": 1.5}),
    ("payments", {"unknown_fault": 1}),
    ("payments", {"lock_contention_ms": 100}),  # an inventory fault, not a payments one
    ("payments", {"error_rate": 0.1, "ttl_s": 0}),
    ("payments", {"error_rate": 0.1, "ttl_s": 86401}),
    ("payments", {}),
    ("inventory", {"lock_contention_ms": -1}),
    ("inventory", {"error_rate": 2}),
    ("inventory", {"lock_contention_ms": True}),
    ("inventory", {"latency_ms": 10}),
])
def test_bad_chaos_values_are_422_and_change_nothing(
        stack: ShopStack, rdb: redis.Redis, service: str, body: dict) -> None:
    # A valid fault already set must survive a rejected write untouched.
    ok = httpx.post(f"{stack.url(service)}/chaos/config", headers=stack.admin_headers(),
                    json={"error_rate": 0.01, "ttl_s": 300}, timeout=10)
    assert ok.status_code == 200
    before = _snapshot(rdb)
    response = httpx.post(f"{stack.url(service)}/chaos/config", headers=stack.admin_headers(),
                          json=body, timeout=10)
    assert response.status_code == 422, response.text
    assert "Traceback" not in response.text
    assert _snapshot(rdb) == before
    _all_chaos_keys_have_ttl(rdb)


def test_malformed_chaos_json_is_422(stack: ShopStack, rdb: redis.Redis) -> None:
    response = httpx.post(f"{stack.url('payments')}/chaos/config",
                          headers={**stack.admin_headers(), "Content-Type": "application/json"},
                          content=b'{"error_rate": 0.', timeout=10)
    assert response.status_code == 422
    assert _snapshot(rdb) == dict.fromkeys(CHAOS_KEYS)


def test_study_query_form_sets_faults_like_the_json_body(stack: ShopStack,
                                                         rdb: redis.Redis) -> None:
    """The study's client: `POST /chaos/config?error_rate=0.2`, no body, admin token."""
    payments, inventory = stack.url("payments"), stack.url("inventory")
    with httpx.Client(timeout=10) as client:
        no_token = client.post(f"{payments}/chaos/config", params={"error_rate": 0.2})
        assert no_token.status_code == 401
        assert _snapshot(rdb) == dict.fromkeys(CHAOS_KEYS)

        response = client.post(f"{payments}/chaos/config", headers=stack.admin_headers(),
                               params={"error_rate": 0.2})
        assert response.status_code == 200, response.text
        assert response.json()["faults"]["error_rate"]["value"] == 0.2
        assert rdb.get("chaos:payments:error_rate") == "0.2"
        assert 0 < rdb.ttl("chaos:payments:error_rate") <= 900  # the default TTL

        response = client.put(f"{inventory}/chaos/config", headers=stack.admin_headers(),
                              params={"lock_contention_ms": 150, "ttl_s": 120})
        assert response.status_code == 200, response.text
        assert rdb.get("chaos:inventory:lock_contention_ms") == "150"
        assert 0 < rdb.ttl("chaos:inventory:lock_contention_ms") <= 120
        _all_chaos_keys_have_ttl(rdb)


@pytest.mark.parametrize("params,body", [
    ({"error_rate": "1.5"}, None),
    ({"error_rate": "lots"}, None),
    ({"error_rate": "nan"}, None),
    ({"latency_ms": "2.5"}, None),
    ({"unknown_fault": "1"}, None),
    ({"ttl_s": "60"}, None),  # a TTL but no fault
    ({"error_rate": "0.1"}, {"latency_ms": 100}),  # both forms at once: ambiguous
])
def test_bad_query_form_is_422_and_changes_nothing(stack: ShopStack, rdb: redis.Redis,
                                                   params: dict, body: dict | None) -> None:
    before = _snapshot(rdb)
    response = httpx.post(f"{stack.url('payments')}/chaos/config", params=params, json=body,
                          headers=stack.admin_headers(), timeout=10)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_request"
    assert _snapshot(rdb) == before


def test_clearing_chaos_needs_a_loopback_host_but_no_token(stack: ShopStack,
                                                           rdb: redis.Redis) -> None:
    """A DNS-rebinding page sends its own Host: it must not end a game day's faults."""
    payments = stack.url("payments")
    with httpx.Client(timeout=10) as client:
        set_rate = client.post(f"{payments}/chaos/config", headers=stack.admin_headers(),
                               json={"error_rate": 0.3, "ttl_s": 300})
        assert set_rate.status_code == 200
        for host in ("evil.example", "evil.example:8002", "10.0.0.7", "[fe80::1]:8002"):
            refused = client.delete(f"{payments}/chaos/config", headers={"Host": host})
            assert refused.status_code == 403, (host, refused.text)
            assert refused.json()["error"] == "forbidden"
        wrong = client.delete(f"{payments}/chaos/config",
                              headers={"Authorization": "Bearer not-the-token"})
        assert wrong.status_code == 401
        assert rdb.get("chaos:payments:error_rate") == "0.3"

        with_token = client.delete(f"{payments}/chaos/config", params={"fault": "error_rate"},
                                   headers=stack.admin_headers())
        assert with_token.status_code == 200
        assert rdb.get("chaos:payments:error_rate") is None


@pytest.mark.skipif(not shutil.which("curl"), reason="curl not installed")
def test_runbook_reset_loop_works_as_written(stack: ShopStack, rdb: redis.Redis) -> None:
    """`curl -s -X DELETE "$url/chaos/config"` on localhost: no token, no Content-Type."""
    for service in ("payments", "inventory"):
        response = httpx.post(f"{stack.url(service)}/chaos/config",
                              headers=stack.admin_headers(), json={"error_rate": 0.4}, timeout=10)
        assert response.status_code == 200
    for service in ("payments", "inventory"):
        url = f"http://localhost:{stack.ports[service]}"
        done = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                               "-X", "DELETE", f"{url}/chaos/config"],
                              capture_output=True, text=True, timeout=30)
        assert done.stdout == "200", (service, done.stdout, done.stderr)
    assert _snapshot(rdb) == dict.fromkeys(CHAOS_KEYS)

"""A stack of its own: `stack up` returns only once Prometheus has scraped every service (so
`chaosctl health` is green at once), replica counts come from run/stack.json, and Redis keeps
idempotency records and chaos keys (with their TTL) across a restart and a SIGKILL."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import httpx
import pytest

from tests.e2e.chaos_support import chaos_keys
from tests.e2e.conftest import StackHandle

# Three `stack up`s of its own stack, two Redis restarts and an orders restart: the longest
# single test of `make test` (about 2 minutes on the busy 2-core CI machine), so it runs with
# the other lifecycle rehearsals in `make test-slow` (CI runs both).
pytestmark = pytest.mark.slow

ORDER = {"customer_id": "persist-test",
         "items": [{"product_id": "prod-001", "quantity": 1, "unit_price": 5.0}]}


def _targets_up_now(stack: StackHandle) -> None:
    """Ask Prometheus directly, no wait, the moment a command returned."""
    targets = httpx.get(f"{stack.url('prometheus')}/api/v1/targets", timeout=10).json()
    active = targets["data"]["activeTargets"]
    assert len(active) == 5 and all(t["health"] == "up" for t in active), active


def _health_now(stack: StackHandle) -> None:
    result = stack.cli("health", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["healthy"] and report["prometheus"]["targets_total"] == 5, report


def _order(stack: StackHandle, key: str) -> httpx.Response:
    return httpx.post(f"{stack.url('gateway')}/orders", json=ORDER,
                      headers={"Idempotency-Key": key}, timeout=30)


def _assert_replayed(stack: StackHandle, key: str, order_id: str) -> None:
    replay = _order(stack, key)
    assert replay.status_code in (201, 202), replay.text
    assert replay.json()["id"] == order_id
    assert replay.headers.get("X-Idempotency-Replayed") == "true"


def test_up_waits_for_scrapes_and_redis_persists(make_stack: Callable[[], StackHandle]) -> None:
    stack = make_stack()
    (stack.home / "run").mkdir(parents=True)
    (stack.home / "run" / "stack.json").write_text('{"replicas": {"orders": 2}}')
    stack.up()
    _targets_up_now(stack)
    _health_now(stack)
    assert sorted(stack.pids("orders")) == ["orders.0", "orders.1"]
    # Only Prometheus to start: it is ready in a blink but has no targets yet. Without the
    # wait this `up` returned at once and health said "no active scrape targets".
    assert stack.cli("stack", "kill", "prometheus").returncode == 0
    stack.up()
    _targets_up_now(stack)
    _health_now(stack)

    key = f"persist-{uuid.uuid4().hex}"
    created = _order(stack, key)
    assert created.status_code == 201, created.text
    order_id = created.json()["id"]
    inject = stack.cli("inject", "payment-latency", "--ms", "1", "--ttl", "10m")
    assert inject.returncode == 0, inject.stderr
    [(_, ttl_before)] = chaos_keys(stack).values()

    # A clean restart (SIGTERM) and a crash (SIGKILL): the append-only file keeps both.
    assert stack.cli("stack", "restart", "redis").returncode == 0
    [(value, ttl_after)] = chaos_keys(stack).values()
    assert value == "1" and 0 < ttl_after <= ttl_before  # the TTL went on, not reset or lost
    _assert_replayed(stack, key, order_id)

    assert stack.cli("stack", "kill", "redis").returncode == 0
    assert stack.cli("stack", "start", "redis").returncode == 0
    _assert_replayed(stack, key, order_id)
    [(_, ttl_killed)] = chaos_keys(stack).values()
    assert 0 < ttl_killed <= ttl_after

    # A restarted service: its last scrape was the failed one from the gap; restart waits.
    assert stack.cli("chaos", "clear", "--all").returncode == 0
    assert stack.cli("stack", "restart", "orders").returncode == 0
    _targets_up_now(stack)
    _health_now(stack)

    # `down` (data kept) deletes faults first: the next `up` starts clean, orders still there.
    assert stack.cli("inject", "payment-errors", "--rate", "0.5").returncode == 0
    down = stack.cli("stack", "down")
    assert down.returncode == 0 and "cleared chaos keys: chaos:payments:error_rate" in down.stdout
    stack.up()
    assert chaos_keys(stack) == {}
    _assert_replayed(stack, key, order_id)

    down = stack.cli("stack", "down", "--purge")
    assert down.returncode == 0, down.stderr
    assert not (stack.home / "redis").exists()

"""End to end for the playbooks that close the coverage gaps: `inventory-errors` (the fault
`chaosctl inject inventory-errors`) and the `order-failures` catch-all (orders fail for a
reason no specific playbook knows). Same shape as test_playbooks_incidents: fault under light
traffic, `diagnose` names exactly that playbook, `remediate NAME --yes` recovers and verifies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.e2e import test_playbooks_incidents as incidents
from tests.e2e.playbook_traffic import IncidentTraffic as Traffic
from tests.e2e.test_playbooks_incidents import diagnose, remediate, set_chaos, wait_firing
from tests.support import wait_for

# Minutes each on a live stack: `make test-slow` (CI runs it after `make test`).
pytestmark = pytest.mark.slow

# The incident tests' fixture (light traffic on demand, the stack left clean), shared as is.
incident = incidents.incident


class UnknownProductTraffic(Traffic):
    """Orders for a product inventory does not have: inventory refuses it (4xx), so
    every order ends inventory_failed without any downstream error - no specific playbook's
    symptom, exactly what the catch-all is for."""

    def order_body(self, i: int) -> dict[str, Any]:
        return {"customer_id": f"cust-{i % 50}",
                "items": [{"product_id": "no-such-product", "quantity": 1, "unit_price": 1.0}]}


def evidence(data: dict[str, Any], playbook: str) -> dict[str, Any]:
    pb = next(p for p in data["playbooks"] if p["playbook"] == playbook)
    return {e["name"]: e for e in pb["evidence"]}


def test_inventory_errors(stack: Any, incident: Callable[..., Traffic]) -> None:
    incident()
    set_chaos(stack, "inventory", error_rate=1.0)
    data = wait_firing(stack, "inventory-errors")
    found = evidence(data, "inventory-errors")
    assert found["2. check inventory chaos config"]["output"]["faults"]["error_rate"]["value"]
    run = remediate(stack, "inventory-errors")
    branch = next(s for s in run["steps"] if s["action"] == "if")
    assert branch["output"]["branch"] == "then"  # the key was set: cleared, not scaled
    config = httpx.get(f"{stack.url('inventory')}/chaos/config", timeout=10).json()
    assert config["faults"]["error_rate"]["value"] is None
    breakers = httpx.get(f"{stack.url('gateway')}/status/breakers", timeout=10).json()
    assert breakers["breakers"]["inventory"]["state"] == "closed"


def _unknown_products(stack: Any, incident: Callable[..., Traffic]) -> dict[str, Any]:
    """Fail every order with an unknown product until order-failures fires; then switch the
    traffic back to real products (what fixing the client would do) and return the diagnosis."""
    bad = UnknownProductTraffic(stack.url("gateway"), rate=8.0, max_seconds=120).start()
    seen: list[Any] = []  # what fired instead, for the failure message

    def fired() -> dict[str, Any] | None:
        data = diagnose(stack)
        seen[:] = [data["firing"], dict(bad.codes)]
        return data if "order-failures" in data["firing"] else None

    try:
        try:
            wait_for(fired, timeout=90, interval=0.5, what="order-failures to fire")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last diagnose fired {seen[0]}, "
                                 f"traffic codes {seen[1]}") from None
        data = wait_firing(stack, "order-failures", timeout=30)
    finally:
        bad.stop()
    incident()
    found = evidence(data, "order-failures")
    statuses = found["orders by status (last minute, most first)"]["output"]
    # Ranked most first; an earlier test's completed orders may still lead the last minute.
    counts = {row["labels"]["status"]: row["value"] for row in statuses}
    assert counts.get("inventory_failed", 0) > 0, statuses
    assert [row["value"] for row in statuses] == sorted(counts.values(), reverse=True)
    latest = found["latest orders and why they failed"]["output"]["body"]["orders"]
    shown = [(o.get("status"), o.get("reason")) for o in latest]
    # Inventory refused the product (4xx: unknown / no stock) - a client problem, not an error.
    assert any(status == "inventory_failed" and (reason or "").startswith("inventory answered 4")
               for status, reason in shown), shown
    return data


def test_order_failures_advises_when_no_chaos_is_set(stack: Any,
                                                     incident: Callable[..., Traffic]) -> None:
    _unknown_products(stack, incident)
    run = remediate(stack, "order-failures")
    branch = next(s for s in run["steps"] if s["action"] == "if")
    assert branch["output"]["branch"] == "else"
    assert any(s["action"] == "advise" for s in run["steps"])


def test_order_failures_clears_lingering_chaos(stack: Any,
                                               incident: Callable[..., Traffic]) -> None:
    # A leftover chaos key no specific playbook reacts to (payments never sees these orders).
    set_chaos(stack, "payments", latency_ms=20)
    _unknown_products(stack, incident)
    run = remediate(stack, "order-failures")
    cleared = next(s for s in run["steps"] if s["action"] == "clear_worst_chaos")
    assert cleared["output"]["cleared"] == "payments"
    assert cleared["output"]["faults"] == ["latency_ms"]
    config = httpx.get(f"{stack.url('payments')}/chaos/config", timeout=10).json()
    assert config["faults"]["latency_ms"]["value"] is None

"""What the stack really holds for an order: its row in orders' database, its charge at
payments and its reservation at inventory; and the invariant crash safety promises:

- `completed`: exactly one live charge and one held reservation;
- failed (`payment_failed`, `inventory_failed`): no live charge and no held stock;
- never `pending` once its deadline and the recovery grace have passed.
"""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import create_engine, text

from tests.integration.shopstack import ShopStack
from tests.support import wait_for

FAILED = ("payment_failed", "inventory_failed")


def db_url(stack: ShopStack, service: str = "orders") -> str:
    if stack.database_url:
        return stack.database_url.replace("postgresql://", "postgresql+psycopg://", 1)
    return f"sqlite:///{stack.data_dir / f'{service}.db'}"


def order_rows(stack: ShopStack, customer: str) -> list[dict[str, Any]]:
    """Every order row of `customer`, straight from orders' database (no page limit)."""
    engine = create_engine(db_url(stack))
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(
                text("SELECT * FROM orders WHERE customer_id = :c ORDER BY created_at"),
                {"c": customer})]
    finally:
        engine.dispose()


def held_reservations(stack: ShopStack, order_ids: list[str]) -> set[str]:
    """Which of `order_ids` inventory holds stock for, straight from its database (cheap
    enough to poll in a sub-second window)."""
    if not order_ids:
        return set()
    engine = create_engine(db_url(stack, "inventory"))
    try:
        with engine.connect() as conn:
            marks = ", ".join(f":o{i}" for i in range(len(order_ids)))
            return {r[0] for r in conn.execute(
                text(f"SELECT order_id FROM reservations WHERE status = 'reserved' "
                     f"AND order_id IN ({marks})"),
                {f"o{i}": o for i, o in enumerate(order_ids)})}
    finally:
        engine.dispose()


def downstream_state(stack: ShopStack, order_id: str) -> tuple[str | None, str | None]:
    """(charge status, reservation status); None where the service has no row."""
    with httpx.Client(timeout=10) as client:
        charge = client.get(f"{stack.url('payments')}/payments/{order_id}")
        held = client.get(f"{stack.url('inventory')}/inventory/reservations/{order_id}")
    assert charge.status_code in (200, 404), charge.text
    assert held.status_code in (200, 404), held.text
    return (charge.json()["status"] if charge.status_code == 200 else None,
            held.json()["status"] if held.status_code == 200 else None)


def problem(stack: ShopStack, row: dict[str, Any]) -> str | None:
    """Why this order breaks the invariant, or None when it holds."""
    charge, held = downstream_state(stack, row["id"])
    if row["status"] == "completed":
        if (charge, held) != ("charged", "reserved"):
            return f"{row['id']} completed with charge={charge} reservation={held}"
        return None
    if row["status"] in FAILED:
        if charge == "charged" or held == "reserved":
            return f"{row['id']} {row['status']} with charge={charge} reservation={held}"
        return None
    return f"{row['id']} is {row['status']}"


def wait_settled(stack: ShopStack, customer: str, timeout: float = 120.0
                 ) -> list[dict[str, Any]]:
    """Poll until every order of `customer` holds the invariant; returns the rows."""
    last: list[str] = []

    def settled() -> list[dict[str, Any]] | None:
        rows = order_rows(stack, customer)
        last[:] = [p for p in (problem(stack, r) for r in rows) if p]
        return rows if not last else None

    try:
        return wait_for(settled, timeout=timeout, interval=0.5,
                        what=f"orders of {customer} to settle")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; still wrong: {last[:10]}") from None


def stock(stack: ShopStack, product: str) -> int:
    response = httpx.get(f"{stack.url('inventory')}/inventory/{product}", timeout=10)
    response.raise_for_status()
    return int(response.json()["available"])


def live_charges(stack: ShopStack) -> int:
    response = httpx.get(f"{stack.url('payments')}/payments", timeout=10)
    response.raise_for_status()
    return int(response.json()["count"])


def set_chaos(stack: ShopStack, service: str, **values: float) -> None:
    response = httpx.post(f"{stack.url(service)}/chaos/config", headers=stack.admin_headers(),
                          json={**values, "ttl_s": 120}, timeout=10)
    assert response.status_code == 200, response.text


def clear_chaos(stack: ShopStack, service: str) -> None:
    httpx.delete(f"{stack.url(service)}/chaos/config", timeout=10).raise_for_status()

"""Small helpers the integration tests share: order bodies, counts of what the stack stored,
and a bounded background stream of orders."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from tests.integration.ledger import db_url
from tests.integration.shopstack import ShopStack

# The client contract: 201 for a completed order, 202 for one recorded but failed.
RECORDED = (201, 202)


def order_body(customer: str, product: str = "SKU-001", quantity: int = 1,
               unit_price: float = 9.99) -> dict[str, Any]:
    return {"customer_id": customer,
            "items": [{"product_id": product, "quantity": quantity, "unit_price": unit_price}]}


def new_customer(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class Counts:
    """What the stack has stored: order rows, charges, notification events, one product's stock."""

    orders: int
    charges: int
    events: int
    stock: int | None = None


def order_count(stack: ShopStack) -> int:
    """Every order row in orders' database. The API lists one page of at most 1000, and the
    session's stack passes 1000 orders on some runs (a CI run failed on it)."""
    engine = create_engine(db_url(stack))
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM orders")).scalar_one())
    finally:
        engine.dispose()


def counts(stack: ShopStack, product: str | None = None) -> Counts:
    with httpx.Client(timeout=10) as client:
        charges = client.get(f"{stack.url('payments')}/payments").json()["count"]
        events = client.get(f"{stack.url('notifications')}/events",
                            params={"limit": 1}).json()["count"]
        stock = None
        if product:
            stock = client.get(f"{stack.url('inventory')}/inventory/{product}").json()[
                "available"]
    return Counts(orders=order_count(stack), charges=charges, events=events, stock=stock)


def orders_of(stack: ShopStack, customer: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{stack.url('gateway')}/orders", params={"limit": 1000}, timeout=10)
    response.raise_for_status()
    return [o for o in response.json()["orders"] if o["customer_id"] == customer]


def events_of(stack: ShopStack, order_id: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{stack.url('notifications')}/events",
                         params={"aggregate_id": order_id, "limit": 100}, timeout=10)
    response.raise_for_status()
    return response.json()["events"]  # type: ignore[no-any-return]


@dataclass
class OrderStream:
    """`workers` threads posting orders to `url` until stopped or `max_orders` were sent.

    Bounded in count (max_orders) and in time (the caller stops it; each request times out).
    """

    url: str
    customer: str
    workers: int = 4
    max_orders: int = 2000
    failure_pause_s: float = 0.05
    results: list[tuple[int, dict[str, Any] | None]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def _run(self) -> None:
        with httpx.Client(timeout=15) as client:
            while not self._stop.is_set():
                with self._lock:
                    if len(self.results) >= self.max_orders:
                        return
                try:
                    response = client.post(f"{self.url}/orders",
                                           json=order_body(self.customer, "SKU-077"))
                    status = response.status_code
                    body = response.json() if status in RECORDED else {
                        "error": response.text[:200]}
                except httpx.HTTPError as exc:
                    status, body = 0, {"error": repr(exc)}
                with self._lock:
                    self.results.append((status, body))
                if status not in RECORDED:
                    # Pace a failing client like a real one would (and keep `max_orders` for
                    # real attempts, not for a tight loop of instant 503s).
                    self._stop.wait(self.failure_pause_s)

    def start(self) -> OrderStream:
        self._threads = [threading.Thread(target=self._run, daemon=True)
                         for _ in range(self.workers)]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def created(self) -> list[dict[str, Any]]:
        """Orders the stack acknowledged: completed (201) or recorded but failed (202)."""
        with self._lock:
            return [body for status, body in self.results if status in RECORDED and body]

    def summary(self, last: int = 50) -> str:
        """Statuses and error texts of the last `last` results, for assertion messages."""
        from collections import Counter

        with self._lock:
            tail = self.results[-last:]
        return str(Counter((s, (b or {}).get("error", "")[:80]) for s, b in tail))

    def failures(self) -> int:
        with self._lock:
            return sum(1 for status, _ in self.results if status not in RECORDED)

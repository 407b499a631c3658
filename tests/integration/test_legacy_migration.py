"""A state directory written by the previous version (SQLite, no crash-safety columns) keeps
working: orders, payments and inventory add what their tables lack on start-up, an old
pending order is recovered, an old key replays, and old charges and reservations count as
live. The old schema below is what that version's SQLAlchemy tables created."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import httpx

from tests.integration.shopstack import ShopStack
from tests.support import wait_for

OLD_ORDERS = """
CREATE TABLE orders (id VARCHAR(64) NOT NULL PRIMARY KEY, customer_id VARCHAR(64) NOT NULL,
  items TEXT NOT NULL, total FLOAT NOT NULL, status VARCHAR(32) NOT NULL, reason VARCHAR(128),
  correlation_id VARCHAR(128), idempotency_key VARCHAR(255), created_at FLOAT NOT NULL,
  updated_at FLOAT NOT NULL);
CREATE INDEX ix_orders_customer_id ON orders (customer_id);
CREATE INDEX ix_orders_status ON orders (status);
CREATE TABLE outbox_events (id VARCHAR(64) NOT NULL PRIMARY KEY,
  aggregate_id VARCHAR(64) NOT NULL, type VARCHAR(64) NOT NULL, payload TEXT NOT NULL,
  created_at DATETIME NOT NULL, published BOOLEAN NOT NULL, published_at DATETIME,
  attempts INTEGER NOT NULL, next_attempt_at FLOAT NOT NULL);
"""
OLD_PAYMENTS = """
CREATE TABLE charges (order_id VARCHAR(64) NOT NULL PRIMARY KEY,
  charge_id VARCHAR(64) NOT NULL, amount FLOAT NOT NULL, created_at FLOAT NOT NULL);
"""
OLD_INVENTORY = """
CREATE TABLE stock (product_id VARCHAR(64) NOT NULL PRIMARY KEY, available INTEGER NOT NULL);
CREATE TABLE reservations (order_id VARCHAR(64) NOT NULL PRIMARY KEY, items TEXT NOT NULL,
  created_at FLOAT NOT NULL);
"""
ITEMS = [{"product_id": "SKU-001", "quantity": 1, "unit_price": 5.0}]
BODY = {"customer_id": "legacy-cust", "items": ITEMS}


def _old_db(path: Path, schema: str, rows: list[tuple[str, tuple]]) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.executescript(schema)
        for sql, values in rows:
            conn.execute(sql, values)
        conn.commit()
    finally:
        conn.close()


def _order(order_id: str, status: str, key: str | None, age_s: float) -> tuple[str, tuple]:
    at = time.time() - age_s
    return ("INSERT INTO orders VALUES (?, ?, ?, ?, ?, NULL, 'corr_legacy', ?, ?, ?)",
            (order_id, "legacy-cust", json.dumps(ITEMS), 5.0, status, key, at, at))


def test_previous_versions_sqlite_files_are_migrated_and_recovered(stack: ShopStack) -> None:
    data = stack.workdir / "data-legacy"
    data.mkdir()
    _old_db(data / "orders.db", OLD_ORDERS, [
        _order("ord_legacy_done", "completed", "LK-unique", 3600),
        _order("ord_legacy_stuck", "pending", "LK-stuck", 3600),  # a crash left it
        _order("ord_legacy_dup1", "completed", "LK-dup", 3600),  # the old double-charge bug
        _order("ord_legacy_dup2", "completed", "LK-dup", 3500),
    ])
    _old_db(data / "payments.db", OLD_PAYMENTS,
            [("INSERT INTO charges VALUES (?, ?, ?, ?)", ("ord_old_paid", "ch_old", 7.0, 1.0))])
    _old_db(data / "inventory.db", OLD_INVENTORY, [
        ("INSERT INTO stock VALUES (?, ?)", ("SKU-001", 50)),
        ("INSERT INTO reservations VALUES (?, ?, ?)",
         ("ord_old_held", json.dumps([{"product_id": "SKU-001", "quantity": 5}]), 1.0))])

    env = {"SHOP_DATA_DIR": str(data)}
    payments, pay_port = stack.spawn("payments", env=env, tag="payments-legacy")
    inventory, inv_port = stack.spawn("inventory", env=env, tag="inventory-legacy")
    # This orders talks to the legacy payments and inventory, with a short recovery grace.
    orders_env = {**env, "SHOP_PAYMENTS_URL": f"http://127.0.0.1:{pay_port}",
                  "SHOP_INVENTORY_URL": f"http://127.0.0.1:{inv_port}",
                  "SHOP_RECOVERY_GRACE_S": "1"}
    orders, port = stack.spawn("orders", tag="orders-legacy", env=orders_env)
    try:
        with httpx.Client(timeout=10) as client:
            pay, inv = f"http://127.0.0.1:{pay_port}", f"http://127.0.0.1:{inv_port}"
            url = f"http://127.0.0.1:{port}"
            # Old rows are live: a charge that was taken, stock that is held.
            assert client.get(f"{pay}/payments/ord_old_paid").json()["status"] == "charged"
            assert client.get(f"{pay}/payments").json()["count"] == 1
            assert client.post(f"{pay}/payments/void", json={"order_id": "ord_old_paid"}
                               ).json()["status"] == "refunded"
            assert client.get(f"{inv}/inventory/reservations/ord_old_held").json()[
                "status"] == "reserved"
            client.post(f"{inv}/inventory/release", json={"order_id": "ord_old_held"}
                        ).raise_for_status()
            assert client.get(f"{inv}/inventory/SKU-001").json()["available"] == 55
            assert client.get(f"{inv}/inventory/prod-003").json()["available"] > 0  # seeded

            # The pending order from before the upgrade is finished by the sweeper: nothing
            # was reserved or charged for it, so it fails and is compensated.
            stuck = wait_for(
                lambda: (o := client.get(f"{url}/orders/ord_legacy_stuck").json())["status"]
                != "pending" and o, timeout=60, what="the legacy pending order to recover")
            assert stuck["status"] == "inventory_failed", stuck
            assert client.get(f"{pay}/payments/ord_legacy_stuck").json()["status"] == "voided"

            # An old key that was unique replays its order; the old duplicates did not stop
            # the unique index from being built.
            replay = client.post(f"{url}/orders", json=BODY,
                                 headers={"Idempotency-Key": "LK-unique"})
            assert replay.status_code == 201, replay.text
            assert replay.headers["x-idempotency-replayed"] == "true"
            assert replay.json()["order_id"] == "ord_legacy_done"
        conn = sqlite3.connect(data / "orders.db")
        try:
            indexes = {r[1] for r in conn.execute("PRAGMA index_list('orders')")}
            keys = dict(conn.execute("SELECT id, dedupe_key FROM orders").fetchall())
        finally:
            conn.close()
        assert "ux_orders_dedupe_key" in indexes
        assert keys["ord_legacy_done"] == "LK-unique"
        assert keys["ord_legacy_dup1"] is None and keys["ord_legacy_dup2"] is None

        # A crash between adding the column and copying the keys left dedupe_key empty: the
        # next start copies them anyway (the copy is not tied to the ALTER having just run).
        orders.stop()
        conn = sqlite3.connect(data / "orders.db")
        try:
            with conn:
                conn.execute("UPDATE orders SET dedupe_key = NULL")
        finally:
            conn.close()
        orders, port = stack.spawn("orders", tag="orders-legacy-again", env=orders_env)
        conn = sqlite3.connect(data / "orders.db")
        try:
            keys = dict(conn.execute("SELECT id, dedupe_key FROM orders").fetchall())
        finally:
            conn.close()
        assert keys["ord_legacy_done"] == "LK-unique"
        assert keys["ord_legacy_dup1"] is None and keys["ord_legacy_dup2"] is None
    finally:
        for proc in (orders, inventory, payments):
            proc.stop()

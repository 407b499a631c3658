"""The integrity objectives against real SQLite databases built from the services' own table
definitions: they pass on a clean run and FAIL, naming the problem, on a double charge, a
second reservation, a pending order and a charge kept on a failed order. No servers."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, insert, text

from chaosctl.config import Settings
from chaosctl.gameday import integrity
from chaosctl.gameday.model import ScenarioResult
from chaosctl.gameday.scenarios import SCENARIOS
from chaosctl.gameday.scoring import integrity_objectives, score

SINCE = 1_700_000_000.0


@pytest.fixture
def shop_dbs(tmp_path: Path) -> dict[str, Any]:
    """orders.db, payments.db, inventory.db under <home>/data, as the services create them."""
    from shop import inventory, payments

    try:  # the orders table moved to its own module with crash recovery
        from shop import order_store as orders
    except ImportError:
        from shop import orders  # type: ignore[no-redef]
    data = tmp_path / "data"
    data.mkdir()
    engines = {}
    for name, module in (("orders", orders), ("payments", payments),
                         ("inventory", inventory)):
        engine = create_engine(f"sqlite:///{data / f'{name}.db'}")
        module.meta.create_all(engine)
        engines[name] = engine
    yield {"settings": Settings(home=tmp_path, database_url=None), "engines": engines,
           "orders": orders.orders, "charges": payments.charges,
           "reservations": inventory.reservations}
    for engine in engines.values():
        engine.dispose()


def add_order(db: dict[str, Any], order_id: str, key: str | None, status: str = "completed",
              charged: bool = True, reserved: bool = True, at: float = SINCE + 5) -> None:
    with db["engines"]["orders"].begin() as conn:
        conn.execute(insert(db["orders"]).values(
            id=order_id, customer_id="c1", items=json.dumps([]), total=12.5, status=status,
            reason=None, correlation_id=None, idempotency_key=key, created_at=at,
            updated_at=at))
    if charged:
        with db["engines"]["payments"].begin() as conn:
            conn.execute(insert(db["charges"]).values(
                order_id=order_id, charge_id=f"ch_{order_id}", amount=12.5, created_at=at))
    if reserved:
        with db["engines"]["inventory"].begin() as conn:
            conn.execute(insert(db["reservations"]).values(
                order_id=order_id, items="[]", created_at=at))


def test_clean_run_passes(shop_dbs: dict[str, Any]) -> None:
    for i in range(3):
        add_order(shop_dbs, f"ord_{i}", f"key-{i}")
    add_order(shop_dbs, "ord_failed", "key-f", status="payment_failed", charged=False)
    add_order(shop_dbs, "ord_old", "key-0", at=SINCE - 100)  # before the run: not counted
    report = integrity.check(shop_dbs["settings"], SINCE)
    assert (report.orders, report.charges) == (4, 3)
    assert report.max_charges_per_key == 1 and report.keys_over_charged == 0
    assert report.max_reservations_per_order == 1 and report.pending == 0
    assert report.charged_not_completed == 0 and report.examples == []
    assert all(o.passed for o in integrity_objectives(report))


def test_double_charge_for_one_key_fails_and_names_the_key(shop_dbs: dict[str, Any]) -> None:
    add_order(shop_dbs, "ord_a", "key-x")
    add_order(shop_dbs, "ord_b", "key-ok")
    # What a replay after a lost key does: a second order, and a second charge, for key-x.
    add_order(shop_dbs, "ord_a2", "key-x")
    report = integrity.check(shop_dbs["settings"], SINCE)
    assert report.keys_over_charged == 1 and report.max_charges_per_key == 2
    assert any("key-x" in e and "2 live charges" in e for e in report.examples)
    failed = [o.name for o in integrity_objectives(report) if not o.passed]
    assert failed == ["live charges per idempotency key"]


def test_pending_and_charged_failed_orders_fail_the_run(shop_dbs: dict[str, Any]) -> None:
    add_order(shop_dbs, "ord_ok", "key-1")
    add_order(shop_dbs, "ord_crashed", "key-2", status="pending")  # orders died mid-order
    add_order(shop_dbs, "ord_paid_failed", "key-3", status="payment_failed")  # charge kept
    settings = shop_dbs["settings"]
    assert integrity.wait_no_pending(settings, SINCE, grace_s=0) == 1
    report = integrity.check(settings, SINCE)
    assert report.pending == 1 and report.charged_not_completed == 1
    assert "order ord_crashed is still pending" in report.examples
    assert any("ord_paid_failed" in e for e in report.examples)

    # Scored as a whole run that met every other objective: the outcome is fail, and why.
    result = _otherwise_perfect_run()
    result.integrity = report
    score(result, SCENARIOS["payment-errors"])
    assert result.outcome == "fail"
    assert "orders left pending after recovery" in result.reason
    assert "live charges on orders that did not complete" in result.reason
    assert "ord_crashed" in result.reason


def test_completed_order_without_charge_or_reservation_fails(shop_dbs: dict[str, Any]) -> None:
    add_order(shop_dbs, "ord_ok", "key-1")
    add_order(shop_dbs, "ord_unpaid", "key-2", charged=False)
    add_order(shop_dbs, "ord_unreserved", "key-3", reserved=False)
    report = integrity.check(shop_dbs["settings"], SINCE)
    assert report.completed_incomplete == 2
    assert "order ord_unpaid is completed without a live charge" in report.examples
    assert "order ord_unreserved is completed without a live reservation" in report.examples
    failed = [o.name for o in integrity_objectives(report) if not o.passed]
    assert failed == ["completed orders without a live charge and reservation"]


def test_unchecked_integrity_fails() -> None:
    result = _otherwise_perfect_run()
    score(result, SCENARIOS["payment-errors"])
    assert result.outcome == "fail" and "live charges per idempotency key" in result.reason
    result = _otherwise_perfect_run()
    result.integrity = integrity.IntegrityReport()
    score(result, SCENARIOS["payment-errors"])
    assert result.outcome == "pass", result.reason


def test_undone_rows_do_not_count_in_a_schema_with_refunds(tmp_path: Path) -> None:
    """A payments/inventory schema that marks refunds and releases: only live rows count.
    Plain SQL here, since the services' refund columns are not fixed yet."""
    data = tmp_path / "data"
    data.mkdir()
    engines = {n: create_engine(f"sqlite:///{data / f'{n}.db'}")
               for n in ("orders", "payments", "inventory")}
    try:
        with engines["orders"].begin() as conn:
            conn.execute(text("CREATE TABLE orders (id TEXT PRIMARY KEY, idempotency_key TEXT, "
                              "status TEXT, created_at REAL)"))
            for oid, key, status in (("o1", "k1", "completed"), ("o2", "k1", "payment_failed"),
                                     ("o3", "k3", "completed")):
                conn.execute(text("INSERT INTO orders VALUES (:i, :k, :s, :t)"),
                             {"i": oid, "k": key, "s": status, "t": SINCE + 1})
        with engines["payments"].begin() as conn:
            conn.execute(text("CREATE TABLE charges (charge_id TEXT PRIMARY KEY, order_id TEXT, "
                              "status TEXT)"))
            conn.execute(text("INSERT INTO charges VALUES ('c1', 'o1', 'charged'), "
                              "('c2', 'o2', 'refunded'), ('c3', 'o3', 'charged')"))
        with engines["inventory"].begin() as conn:
            conn.execute(text("CREATE TABLE reservations (id INTEGER PRIMARY KEY, order_id TEXT, "
                              "released_at REAL)"))
            conn.execute(text("INSERT INTO reservations (order_id, released_at) VALUES "
                              "('o1', NULL), ('o1', :t), ('o3', NULL), ('o3', NULL)"),
                         {"t": time.time()})
        report = integrity.check(Settings(home=tmp_path, database_url=None), SINCE)
    finally:
        for engine in engines.values():
            engine.dispose()
    # o2's charge was refunded: k1 has one live charge and o2 no live charge.
    assert report.keys_over_charged == 0 and report.charged_not_completed == 0
    assert report.charges == 2
    # o1's second reservation was released; o3 holds two live ones.
    assert report.orders_over_reserved == 1 and report.max_reservations_per_order == 2
    assert "order o3 has 2 live reservations" in report.examples
    assert any("charges: live unless status" in n for n in report.notes)
    assert any("reservations: live unless released_at" in n for n in report.notes)


def test_is_live_markers() -> None:
    markers = integrity.undone_markers(["order_id", "status", "voided_at", "refunded"])
    assert markers == ["status", "refunded", "voided_at"]
    assert integrity.is_live({"status": "charged", "voided_at": None, "refunded": 0}, markers)
    assert not integrity.is_live({"status": "Refunded"}, markers)
    assert not integrity.is_live({"status": "charged", "voided_at": 1.0}, markers)
    assert not integrity.is_live({"status": "charged", "refunded": True}, markers)


def _otherwise_perfect_run() -> ScenarioResult:
    r = ScenarioResult(scenario="payment-errors", expected_playbook="payment-degradation",
                       outcome="fail", mttd_s=3.0, mttr_s=9.0,
                       fired_playbook="payment-degradation", right_playbook=True,
                       duplicates=0, lost_events=0, rolled_back=True)
    r.after.success_rate = 1.0
    return r

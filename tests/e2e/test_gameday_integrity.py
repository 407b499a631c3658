"""Game days that can see a double charge: crash-mid-order (orders SIGKILLed with requests in
flight) and redis-restart, scored on the databases' integrity; and proof on the real stack's
databases that a second charge for one key fails the check."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from chaosctl.gameday import integrity
from tests.e2e.chaos_support import assert_game_day_held

# Minutes each on a live stack: `make test-slow` (CI runs it after `make test`).
pytestmark = pytest.mark.slow

# A modest rate: the 2-core test machine is shared, and the scenario itself piles orders up.
FAST = ["--rps", "8", "--baseline", "4s", "--hold", "3s", "--duration", "60s"]
INTEGRITY = ("live charges per idempotency key", "live reservations per order",
             "orders left pending after recovery",
             "live charges on orders that did not complete",
             "completed orders without a live charge and reservation")


def _game_day(stack: Any, report: Path, scenario: str) -> tuple[int, dict[str, Any], str]:
    result = stack.cli("game-day", scenario, *FAST, "--json", "--report", str(report),
                       timeout=600)
    try:
        data = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"no JSON (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")
    (run,) = data["results"]
    return result.returncode, run, result.stderr


def _integrity_holds(run: dict[str, Any]) -> None:
    by_name = {o["name"]: o for o in run["objectives"]}
    broken = [f"{n}: {by_name[n]['actual']}" for n in INTEGRITY if not by_name[n]["passed"]]
    assert not broken, (f"integrity broken: {broken}; examples: "
                        f"{run['integrity'] and run['integrity']['examples']}")
    assert run["duplicates"] == 0, run["duplicates"]


def _nothing_injected(stack: Any) -> None:
    status = stack.cli("chaos", "status", "--json")
    assert json.loads(status.stdout)["faults"] == [], status.stdout


def test_crash_mid_order(steady: Any, tmp_path: Path) -> None:
    code, run, stderr = _game_day(steady, tmp_path, "crash-mid-order")
    assert run["replay"] is not None or run["outcome"] != "aborted", \
        f"aborted before the replays: {run['reason']}\n{stderr}"
    journal = json.loads(Path(run["report_path"]).with_suffix(".json").read_text())
    labels = [m["label"] for m in journal["markers"]]
    assert any("SIGKILL orders" in label for label in labels), labels
    assert run["fired_playbook"] == "service-down", stderr
    replay = run["replay"]
    assert replay is not None and replay["mode"] == "cut-off"
    assert replay["keys"] >= 1, "the crash cut no request off: it tested nothing"
    _integrity_holds(run)
    assert replay["unresolved"] == 0, replay
    assert run["rolled_back"] is True
    assert_game_day_held(code, run, stderr)  # time targets are the game day's figures
    _nothing_injected(steady)
    assert all(p["alive"] for p in steady.status()["processes"] if p["name"] == "orders")


def test_redis_restart_forgets_no_key(steady: Any, tmp_path: Path) -> None:
    before = steady.pids("redis")
    code, run, stderr = _game_day(steady, tmp_path, "redis-restart")
    assert steady.pids("redis") != before, "redis was not restarted"
    assert run["expected_playbook"] is None
    replay = run["replay"]
    assert replay is not None and replay["mode"] == "settled" and replay["keys"] >= 1
    assert replay["new_orders"] == 0, replay["examples"]
    _integrity_holds(run)
    assert run["fired_playbook"] is None, stderr
    assert_game_day_held(code, run, stderr)  # time targets are the game day's figures
    _nothing_injected(steady)


def test_a_second_charge_for_one_key_fails_the_check(steady: Any) -> None:
    """Real orders from the real stack, then one forged second order + charge for the same
    key in orders.db / payments.db: the check must fail and name the key."""
    from sqlalchemy import create_engine, text

    if steady.settings.database_url:
        pytest.skip("forges rows in the SQLite files; this stack uses PostgreSQL")
    gateway = steady.url("gateway")
    key = "gd-forged-double-charge"
    body = {"customer_id": "integrity-test", "items": [
        {"product_id": "SKU-001", "quantity": 1, "unit_price": 5.0}]}
    since = time.time() - 1.0  # same machine, same clock as the services' created_at
    first = httpx.post(f"{gateway}/orders", json=body, headers={"Idempotency-Key": key},
                       timeout=30)
    assert first.status_code == 201, first.text
    clean = integrity.check(steady.settings, since)
    assert clean.orders >= 1 and clean.keys_over_charged == 0, clean.examples

    data = steady.home / "data"
    orders_db = create_engine(f"sqlite:///{data / 'orders.db'}")
    payments_db = create_engine(f"sqlite:///{data / 'payments.db'}")
    forged = "ord_forged_second_charge"
    row = first.json()
    try:
        with orders_db.begin() as conn:
            conn.execute(text(
                "INSERT INTO orders (id, customer_id, items, total, status, reason, "
                "correlation_id, idempotency_key, created_at, updated_at) VALUES "
                "(:id, 'integrity-test', '[]', 5.0, 'completed', NULL, NULL, :key, :t, :t)"),
                {"id": forged, "key": key, "t": row["created_at"]})
        with payments_db.begin() as conn:
            conn.execute(text("INSERT INTO charges (order_id, charge_id, amount, created_at) "
                              "VALUES (:id, 'ch_forged', 5.0, :t)"),
                         {"id": forged, "t": row["created_at"]})
        report = integrity.check(steady.settings, since)
        assert report.keys_over_charged == 1 and report.max_charges_per_key == 2
        assert any(key in e for e in report.examples), report.examples
    finally:
        with orders_db.begin() as conn:
            conn.execute(text("DELETE FROM outbox_events WHERE aggregate_id = :id"),
                         {"id": forged})
            conn.execute(text("DELETE FROM orders WHERE id = :id"), {"id": forged})
        with payments_db.begin() as conn:
            conn.execute(text("DELETE FROM charges WHERE order_id = :id"), {"id": forged})
        orders_db.dispose()
        payments_db.dispose()
    assert integrity.check(steady.settings, since).keys_over_charged == 0


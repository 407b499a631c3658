"""shop.db.write on a real SQLite file: the per-order transactions run on one held DBAPI
connection with statements compiled once, and must store exactly what SQLAlchemy's own
execution stores (types, defaults, literals), stay atomic, and raise SQLAlchemy's
IntegrityError."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from shop.db import make_engine, write
from shop.order_store import (
    FINISH,
    INSERT_EVENT,
    INSERT_ORDER,
    DuplicateKey,
    OrderStore,
    orders,
    outbox,
)
from shop.outbox import new_event
from shop.settings import ShopSettings
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> OrderStore:
    monkeypatch.setenv("SHOP_DATA_DIR", str(tmp_path))
    engine = make_engine(ShopSettings.from_env("orders"))
    store = OrderStore(engine)
    store.setup()
    yield store
    engine.dispose()


def order_row(order_id: str, key: str | None = None) -> dict:
    now = time.time()
    return {"id": order_id, "customer_id": "c1", "items": '[{"product_id": "SKU-001"}]',
            "total": 12.5, "status": "pending", "reason": None, "correlation_id": "corr",
            "idempotency_key": key, "created_at": now, "updated_at": now, "dedupe_key": key,
            "request_hash": "h" if key else None, "deadline_at": now + 8, "compensation": None}


def stored(store: OrderStore, table, key: str) -> dict:  # noqa: ANN001
    with store.engine.connect() as conn:
        row = conn.execute(select(table).where(table.c.id == key)).mappings().one()
    return dict(row)


def test_rows_written_match_what_sqlalchemy_itself_writes(store: OrderStore) -> None:
    fast_order, slow_order = order_row("ord_fast"), order_row("ord_slow")
    fast_event, slow_event = (new_event(o["id"], "order.created", {"total": 12.5})
                              for o in (fast_order, slow_order))
    with write(store.engine) as tx:
        tx(INSERT_ORDER, fast_order)
        tx(INSERT_EVENT, fast_event)
    with store.engine.begin() as conn:
        conn.execute(INSERT_ORDER, slow_order)
        conn.execute(INSERT_EVENT, slow_event)

    def comparable(row: dict, drop: tuple[str, ...]) -> dict:
        return {k: v for k, v in row.items() if k not in drop}

    assert comparable(stored(store, orders, "ord_fast"), ("id",)) == \
        comparable({**stored(store, orders, "ord_slow"), "created_at": fast_order["created_at"],
                    "updated_at": fast_order["updated_at"],
                    "deadline_at": fast_order["deadline_at"]}, ("id",))
    fast, slow = stored(store, outbox, fast_event["id"]), stored(store, outbox, slow_event["id"])
    # DateTime went through SQLAlchemy's SQLite processor: it reads back as a datetime.
    assert fast["created_at"] == fast_event["created_at"].replace(tzinfo=None)
    assert fast["published"] is False and slow["published"] is False
    assert fast["published_at"] is None and fast["attempts"] == slow["attempts"] == 0


def test_a_failure_inside_rolls_the_whole_transaction_back(store: OrderStore) -> None:
    row = order_row("ord_rollback")
    with pytest.raises(RuntimeError), write(store.engine) as tx:
        tx(INSERT_ORDER, row)
        tx(INSERT_EVENT, new_event(row["id"], "order.created", {}))
        raise RuntimeError("the order must not be stored without finishing the transaction")
    with store.engine.connect() as conn:
        assert conn.execute(select(orders).where(orders.c.id == "ord_rollback")).first() is None
        assert conn.execute(select(outbox).where(
            outbox.c.aggregate_id == "ord_rollback")).first() is None
    # The held connection is usable afterwards.
    store.create(order_row("ord_after"))
    assert stored(store, orders, "ord_after")["status"] == "pending"


def test_unique_index_raises_sqlalchemy_integrity_error(store: OrderStore) -> None:
    store.create(order_row("ord_a", key="key-1"))
    with pytest.raises(DuplicateKey):
        store.create(order_row("ord_b", key="key-1"))
    with pytest.raises(IntegrityError), write(store.engine) as tx:
        tx(INSERT_ORDER, order_row("ord_a"))
    with store.engine.connect() as conn:
        ids = [r[0] for r in conn.execute(select(orders.c.id).order_by(orders.c.id))]
        events = conn.execute(select(outbox.c.aggregate_id)).scalars().all()
    assert ids == ["ord_a"] and events == ["ord_a"]


def test_finish_is_won_once_with_the_pending_literal(store: OrderStore) -> None:
    store.create(order_row("ord_f"))
    assert store.finish("ord_f", "payment_failed", "payments answered 503") is not None
    assert store.finish("ord_f", "completed", None) is None  # WHERE status = 'pending' lost
    row = stored(store, orders, "ord_f")
    assert (row["status"], row["reason"], row["compensation"]) == \
        ("payment_failed", "payments answered 503", "pending")
    with write(store.engine) as tx:
        assert tx(FINISH, {"b_id": "ord_f", "b_status": "completed", "b_reason": None,
                           "b_now": 1.0, "b_compensation": None}) == 0
    with store.engine.connect() as conn:
        types = conn.execute(select(outbox.c.type).where(outbox.c.aggregate_id == "ord_f")
                             .order_by(outbox.c.type)).scalars().all()
    assert types == ["order.created", "order.payment_failed"]

"""shop.db.read and `tx.many` on a real SQLite file, as the outbox publisher uses them: rows
read on the held connection must be exactly what SQLAlchemy's own execution returns (keys,
values, types: DateTime back as datetime, Boolean as bool), and a batch mark must change the
same rows as one UPDATE ... WHERE id IN (...) would."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from shop.db import make_engine, read, write
from shop.order_store import INSERT_EVENT, OrderStore, outbox
from shop.outbox import OutboxPublisher, new_event
from shop.settings import ShopSettings
from sqlalchemy import select


@pytest.fixture
def publisher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> OutboxPublisher:
    monkeypatch.setenv("SHOP_DATA_DIR", str(tmp_path))
    engine = make_engine(ShopSettings.from_env("orders"))
    OrderStore(engine).setup()
    yield OutboxPublisher(engine, outbox, notifications=None)  # type: ignore[arg-type]
    engine.dispose()


def _events(publisher: OutboxPublisher, n: int) -> list[str]:
    ids = []
    with write(publisher.engine) as tx:
        for i in range(n):
            event = new_event(f"ord_{i}", "order.created", {"order_id": f"ord_{i}", "n": i,
                                                            "name": "ünïcode"})
            tx(INSERT_EVENT, event)
            ids.append(event["id"])
    return ids


def _through_sqlalchemy(publisher: OutboxPublisher, stmt, params: dict) -> list[dict]:  # noqa: ANN001
    with publisher.engine.connect() as conn:
        return [dict(r) for r in conn.execute(stmt, params).mappings()]


def test_read_returns_what_sqlalchemy_returns(publisher: OutboxPublisher) -> None:
    _events(publisher, 7)
    params = {"b_now": time.time() + 1}
    ours = read(publisher.engine, publisher._due_query, params)
    theirs = _through_sqlalchemy(publisher, publisher._due_query, params)
    assert len(ours) == 7
    assert ours == theirs
    for row in ours:
        assert [type(v) for v in row.values()] == [type(v) for v in theirs[0].values()]
        assert isinstance(row["created_at"], datetime) and row["published"] is False
    assert publisher._event(ours[0])["payload"]["name"] == "ünïcode"
    assert publisher.pending() == 7


def test_mark_publishes_exactly_the_delivered_and_backs_off_the_failed(
        publisher: OutboxPublisher) -> None:
    ids = _events(publisher, 6)
    before = time.time()
    publisher._mark(ids[:3], [(ids[3], 0), (ids[4], 5)])
    rows = {r["id"]: r for r in _through_sqlalchemy(publisher, select(outbox), {})}
    for event_id in ids[:3]:
        assert rows[event_id]["published"] is True and rows[event_id]["attempts"] == 1
        assert rows[event_id]["published_at"] is not None
    assert rows[ids[3]]["attempts"] == 1 and rows[ids[4]]["attempts"] == 6
    assert before + 0.5 <= rows[ids[3]]["next_attempt_at"] <= time.time() + 0.5
    assert before + 16 <= rows[ids[4]]["next_attempt_at"] <= time.time() + 16
    assert not rows[ids[5]]["published"] and rows[ids[5]]["attempts"] == 0
    assert publisher.pending() == 3
    # Due now: the untouched one only (the two failed ones wait for their backoff).
    assert [r["id"] for r in publisher._due()] == [ids[5]]


def test_published_at_is_stored_as_sqlalchemy_stores_it(publisher: OutboxPublisher) -> None:
    ids = _events(publisher, 2)
    publisher._mark([ids[0]], [])
    with publisher.engine.begin() as conn:  # the other one marked by SQLAlchemy itself
        conn.execute(outbox.update().where(outbox.c.id == ids[1]).values(
            published=True, published_at=datetime.now(UTC), attempts=outbox.c.attempts + 1))
        raw = conn.exec_driver_sql(
            "SELECT published, published_at, attempts FROM outbox_events ORDER BY id").all()
    shapes = {(type(p), len(str(at)), a) for p, at, a in raw}
    assert len(shapes) == 1, raw  # same column types and text format for both writers


def test_many_with_no_rows_is_a_no_op(publisher: OutboxPublisher) -> None:
    with write(publisher.engine) as tx:
        assert tx.many(publisher._mark_query, []) == 0
    assert publisher.pending() == 0

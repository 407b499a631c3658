"""Transactional outbox of the orders service and its publisher.

Events are written in the same transaction as the order; a background loop delivers them to
notifications with per-event exponential backoff. Delivery is at-least-once; notifications
deduplicates by event id, so a crash between delivery and marking never loses nor doubles one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    func,
    select,
    update,
)

from shop import metrics
from shop.background import BackgroundLoop
from shop.db import read, run_db, write
from shop.downstream import Downstream
from shop.resilience import BreakerOpenError, BulkheadFullError, Deadline, ResilienceError

log = logging.getLogger("shop.outbox")
BATCH = 100
# Concurrent one-event deliveries (the fallback); below the notifications bulkhead (20).
CONCURRENCY = 16


def outbox_table(meta: MetaData) -> Table:
    return Table(
        "outbox_events", meta,
        Column("id", String(64), primary_key=True),
        Column("aggregate_id", String(64), nullable=False, index=True),
        Column("type", String(64), nullable=False),
        Column("payload", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("published", Boolean, nullable=False, default=False, index=True),
        Column("published_at", DateTime(timezone=True)),
        Column("attempts", Integer, nullable=False, default=0),
        Column("next_attempt_at", Float, nullable=False, default=0.0),
    )


def new_event(aggregate_id: str, event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    # 32 random hex digits like uuid4().hex, without building a UUID (two per order)
    return {"id": f"evt_{os.urandom(16).hex()}", "aggregate_id": aggregate_id, "type": event_type,
            "payload": json.dumps(payload), "created_at": datetime.now(UTC),
            "published": False, "attempts": 0, "next_attempt_at": 0.0}


class OutboxPublisher(BackgroundLoop):
    task_name = "outbox-publisher"

    def __init__(self, engine: Engine, table: Table, notifications: Downstream,
                 interval_s: float = 0.2, idle_s: float = 2.0) -> None:
        self.engine, self.table, self.notifications = engine, table, notifications
        # Woken by this process's own writes (`wake`), it gathers events for `interval_s`
        # and sends them as one batch; otherwise it looks every `idle_s` (events of other
        # replicas, retries after backoff). Polling every 0.2 s was most of an idle orders
        # process's CPU.
        self.interval_s, self.idle_s = interval_s, idle_s
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        super().__init__()
        t = table
        self._due_query = (select(t).where(t.c.published.is_(False))
                           .where(t.c.next_attempt_at <= bindparam("b_now"))
                           .order_by(t.c.created_at).limit(BATCH))
        self._pending_query = select(func.count().label("n")).select_from(t).where(
            t.c.published.is_(False))
        self._mark_query = (update(t).where(t.c.id == bindparam("b_id"))
                            .values(published=True, published_at=bindparam("b_at"),
                                    attempts=t.c.attempts + 1))
        self._backoff_query = (update(t).where(t.c.id == bindparam("b_id"))
                               .values(attempts=bindparam("b_attempts"),
                                       next_attempt_at=bindparam("b_next")))
        self.last_error: str | None = None
        self.refused = False
        self._failing = False

    def pending(self) -> int:
        return int(read(self.engine, self._pending_query)[0]["n"])

    def _due(self) -> list[dict]:
        return read(self.engine, self._due_query, {"b_now": time.time()})

    def _mark(self, delivered: list[str], failed: list[tuple[str, int]]) -> None:
        """One transaction for the whole batch: a row per event made the publisher slower
        than the orders it publishes for (about 18 events/s). Statements built once, run as
        one executemany each (shop.db.write): building an IN list per pass was ~40 % of the
        publisher's CPU (issue 13, third pass)."""
        now = time.time()
        published_at = datetime.now(UTC)
        with write(self.engine) as tx:
            tx.many(self._mark_query, [{"b_id": event_id, "b_at": published_at}
                                       for event_id in delivered])
            tx.many(self._backoff_query, [
                {"b_id": event_id, "b_attempts": attempts + 1,
                 "b_next": now + min(30.0, 0.5 * 2 ** min(attempts, 6))}
                for event_id, attempts in failed])

    @staticmethod
    def _event(row: dict) -> dict:
        return {"id": row["id"], "type": row["type"], "aggregate_id": row["aggregate_id"],
                "payload": json.loads(row["payload"]),
                "created_at": row["created_at"].isoformat()}

    async def _post(self, path: str, body: dict) -> bool | None:
        """True delivered, False failed (counts as an attempt), None not sent at all.
        `self.refused` says whether notifications answered with a 4xx other than 429."""
        self.refused = False
        try:
            response = await self.notifications.call(
                "POST", path, json=body, deadline=Deadline.after(5.0), retry=False)
        except (BreakerOpenError, BulkheadFullError) as exc:
            # Nothing was sent: do not grow the backoff, just wait for the breaker.
            self.last_error = type(exc).__name__
            return None
        except ResilienceError as exc:
            self.last_error = type(exc).__name__
            return False
        if response.status_code in (200, 201, 202):
            return True
        self.last_error = f"http {response.status_code}"
        self.refused = 400 <= response.status_code < 500 and response.status_code != 429
        return False

    async def _send_each(self, rows: list[dict]) -> list[bool | None]:
        """One event per request, CONCURRENCY at a time: the fallback when a batch is
        refused as a whole (so one event notifications will not take cannot hold the rest)."""
        gate = asyncio.Semaphore(CONCURRENCY)

        async def guarded(row: dict) -> bool | None:
            async with gate:
                return await self._post("/events", self._event(row))

        return list(await asyncio.gather(*(guarded(row) for row in rows)))

    async def publish_once(self) -> int:
        """Deliver what is due in one batch request; returns how many were delivered.

        One request and one notifications transaction per batch: a request per event cost
        orders about a third of its CPU. Delivery is at-least-once and unordered:
        notifications deduplicates by event id.
        """
        rows = await run_db(self.engine, self._due)
        if not rows:
            return 0
        sent = await self._post("/events/batch", {"events": [self._event(r) for r in rows]})
        # A refused batch (an older notifications, an event it will not take) goes one by
        # one; an unreachable notifications does not: that would multiply a failing call.
        outcomes = await self._send_each(rows) if sent is False and self.refused \
            else [sent] * len(rows)
        delivered = [row["id"] for row, ok in zip(rows, outcomes, strict=True) if ok]
        failed = [(row["id"], row["attempts"])
                  for row, ok in zip(rows, outcomes, strict=True) if ok is False]
        await run_db(self.engine, self._mark, delivered, failed)
        stuck = len(rows) - len(delivered)
        if stuck and not self._failing:
            # Once per outage, not per event: the runbook greps these lines (`logs | grep outbox`).
            log.warning("outbox: delivery to notifications failing (%s); %d due events not "
                        "delivered, retrying with backoff", self.last_error, stuck)
        elif delivered and self._failing and not stuck:
            log.warning("outbox: delivering to notifications again")
        self._failing = bool(stuck)
        if delivered:
            self.last_error = None if not failed else self.last_error
            metrics.outbox_published_total.inc(len(delivered))
        return len(delivered)

    def wake(self) -> None:
        """An event was written: publish soon (safe from a database worker thread too)."""
        wake = self._wake
        if wake is None or wake.is_set():
            return
        if threading.get_ident() == self._loop_thread:
            wake.set()
        elif self._loop is not None:
            self._loop.call_soon_threadsafe(wake.set)

    async def run(self) -> None:
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        while True:
            busy = False
            try:
                busy = await self.publish_once() >= BATCH
                metrics.outbox_pending.set(await run_db(self.engine, self.pending))
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the loop must survive a bad moment of the DB
                log.exception("outbox publisher iteration failed")
            if busy:  # a full batch means more is waiting: go again at once
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.idle_s)
            except TimeoutError:
                continue
            await asyncio.sleep(self.interval_s)  # let the batch fill

"""Notifications: receives outbox events, deduplicating by event id."""

from __future__ import annotations

import json
import math
import time
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Column, Float, MetaData, String, Table, Text, func, insert, select
from sqlalchemy.exc import IntegrityError

from shop import metrics
from shop.db import create_tables, make_engine, run_db
from shop.settings import ShopSettings
from shop.web import NO_NUL, create_app, fast_route

MAX_BATCH = 500
meta = MetaData()
events = Table(
    "notification_events", meta,
    Column("id", String(64), primary_key=True),
    Column("type", String(64), nullable=False),
    Column("aggregate_id", String(64), index=True),
    Column("payload", Text, nullable=False),
    Column("received_at", Float, nullable=False),
)



def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True


class Event(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str = Field(min_length=1, max_length=64, pattern=NO_NUL)
    type: str = Field(min_length=1, max_length=64, pattern=NO_NUL)
    aggregate_id: str | None = Field(default=None, max_length=64, pattern=NO_NUL)
    payload: dict[str, Any] = Field(default_factory=dict)

    @field_validator("payload")
    @classmethod
    def _json_numbers_only(cls, payload: dict[str, Any]) -> dict[str, Any]:
        # Python's json reads NaN/Infinity, but they cannot be sent back as JSON later.
        if not _finite(payload):
            raise ValueError("numbers must be finite (no NaN or Infinity)")
        return payload


class EventBatch(BaseModel):
    """What the outbox publisher sends: many events in one request and one transaction."""

    model_config = ConfigDict(extra="forbid")
    events: list[Event] = Field(min_length=1, max_length=MAX_BATCH)


def build(settings: ShopSettings | None = None):  # noqa: ANN201
    settings = settings or ShopSettings.from_env("notifications")
    engine = make_engine(settings)

    @asynccontextmanager
    async def lifespan(_app):  # noqa: ANN001, ANN202
        await run_db(engine, create_tables, engine, meta)
        yield
        engine.dispose()

    async def health() -> tuple[str, dict]:
        return "ok", {"database": "ok"}

    app = create_app(settings, health, lifespan)

    def _row(event: Event, now: float) -> dict[str, Any]:
        return {"id": event.id, "type": event.type, "aggregate_id": event.aggregate_id,
                "payload": json.dumps(event.payload), "received_at": now}

    def _store(event: Event) -> bool:
        try:
            with engine.begin() as conn:
                conn.execute(insert(events).values(**_row(event, time.time())))
            return True
        except IntegrityError:
            return False

    def _store_many(batch: list[Event]) -> int:
        """Store every new event in one transaction; returns how many were new."""
        unique = list({e.id: e for e in batch}.values())
        now = time.time()
        try:
            with engine.begin() as conn:
                seen = set(conn.execute(select(events.c.id).where(
                    events.c.id.in_([e.id for e in unique]))).scalars())
                fresh = [_row(e, now) for e in unique if e.id not in seen]
                if fresh:
                    conn.execute(insert(events), fresh)
            return len(fresh)
        except IntegrityError:
            # Another replica stored one of them meanwhile: one by one, each decides itself.
            return sum(_store(e) for e in unique)

    @app.post("/events/batch", status_code=202)
    async def receive_batch(batch: EventBatch) -> JSONResponse:
        """Many events at once (the outbox publisher), deduplicated by id like POST /events."""
        fresh = await run_db(engine, _store_many, batch.events)
        if fresh:
            metrics.notifications_received_total.inc(fresh)
        if len(batch.events) > fresh:
            metrics.notifications_duplicates_total.inc(len(batch.events) - fresh)
        return JSONResponse({"accepted": len(batch.events), "new": fresh,
                             "duplicates": len(batch.events) - fresh}, 202)

    fast_route(app, "POST", "/events/batch", receive_batch, EventBatch)

    @app.post("/events", status_code=202)
    async def receive(event: Event) -> JSONResponse:
        fresh = await run_db(engine, _store, event)
        (metrics.notifications_received_total if fresh
         else metrics.notifications_duplicates_total).inc()
        return JSONResponse({"accepted": True, "id": event.id, "duplicate": not fresh}, 202)

    @app.get("/events")
    async def list_events(
        limit: int = 100,
        aggregate_id: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
    ) -> dict:
        limit = max(1, min(limit, 10_000))

        def _list() -> dict:
            with engine.connect() as conn:
                query = select(events).order_by(events.c.received_at.desc()).limit(limit)
                count = select(func.count()).select_from(events)
                if aggregate_id:
                    query = query.where(events.c.aggregate_id == aggregate_id)
                    count = count.where(events.c.aggregate_id == aggregate_id)
                rows = [
                    {**dict(r), "payload": json.loads(r["payload"])}
                    for r in conn.execute(query).mappings()
                ]
                return {"events": rows, "count": int(conn.execute(count).scalar_one())}

        return await run_db(engine, _list)

    return app

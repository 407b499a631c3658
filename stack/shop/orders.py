"""Orders: writes the order and its outbox event in one transaction, reserves inventory,
charges payments, and ends every order in a clear status: 201 `completed`, or 202 recorded
but failed (`inventory_failed`, `payment_failed`) and compensated.

Crash safety and durable idempotency are in shop/recovery.py and shop/order_store.py; the
rules are in stack/README.md ("Crash safety", "Idempotency").
"""

from __future__ import annotations

import json
import os
import time
import uuid
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from shop import metrics
from shop.db import make_engine, run_db
from shop.downstream import CallTrace, Downstream
from shop.http_client import HttpClient
from shop.idempotency import (
    REPLAYED_HEADERS,
    IdempotencyStore,
    InProgress,
    Replay,
    body_hash,
    in_progress,
    key_reused,
)
from shop.order_store import (
    PENDING,
    DuplicateKey,
    OrderStore,
    created_event,
    finished_event,
    http_status,
    orders,
    outbox,
    view,
)
from shop.outbox import OutboxPublisher
from shop.recovery import OrderFinisher
from shop.resilience import BreakerState, Deadline, DeadlineExceededError, ResilienceError
from shop.settings import ShopSettings
from shop.web import (
    CORRELATION_HEADER,
    IDEMPOTENCY_HEADER,
    NO_NUL,
    ApiError,
    CorrelationId,
    IdempotencyKey,
    IdPath,
    JsonAnswer,
    NotBool,
    TextQuery,
    check_redis,
    create_app,
    deadline_of,
    fast_route,
    redis_client,
    require_admin,
)

__all__ = ["OrderRequest", "build", "orders", "outbox"]
DOWNSTREAMS = ("payments", "inventory", "notifications")
# A caller's X-Deadline further out than this is cut to it: the deadline is also what the
# recovery sweeper waits for, so a far-future one must not keep a crashed order pending.
MAX_DEADLINE_S = 60.0


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")
    product_id: str = Field(min_length=1, max_length=64, pattern=NO_NUL)
    quantity: Annotated[int, NotBool] = Field(gt=0, le=1000)
    unit_price: Annotated[float, NotBool] = Field(ge=0, le=100_000)


class OrderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customer_id: str = Field(min_length=1, max_length=64, pattern=NO_NUL)
    items: list[Item] = Field(min_length=1, max_length=50)


def _answer(row: dict[str, Any], replayed: bool = False,
            body: dict[str, Any] | None = None) -> JSONResponse:
    """The order's answer; `body` is view(row) when the caller has it already."""
    headers = {"X-Correlation-ID": row["correlation_id"] or ""}
    if replayed:
        headers.update(REPLAYED_HEADERS)
    return JsonAnswer(view(row) if body is None else body, http_status(row), headers=headers)


def build(settings: ShopSettings | None = None):  # noqa: ANN201
    settings = settings or ShopSettings.from_env("orders")
    engine = make_engine(settings)
    store = OrderStore(engine, outbox=settings.outbox)
    redis = redis_client(settings.redis_url)
    idem = IdempotencyStore(redis)
    client = HttpClient(max_connections=200)
    downstreams = {name: Downstream(name, settings, client) for name in DOWNSTREAMS}
    publisher = OutboxPublisher(engine, outbox, downstreams["notifications"])
    store.on_event = publisher.wake
    finisher = OrderFinisher(store, settings, client)
    # A marker older than this belongs to a request that can no longer be running.
    stale_marker_s = settings.request_budget_s + finisher.grace_s

    @asynccontextmanager
    async def lifespan(_app):  # noqa: ANN001, ANN202
        await run_db(engine, store.setup)
        publisher.start()
        finisher.start()  # first sweep now: orders a crash left pending are finished
        yield
        await finisher.stop()
        await publisher.stop()
        await client.aclose()
        await idem.aclose()
        await redis.aclose()
        engine.dispose()

    async def health() -> tuple[str, dict]:
        deps: dict[str, Any] = {"redis": await check_redis(redis)}
        try:
            deps["outbox_pending"] = await run_db(engine, publisher.pending)
            deps["database"] = "ok"
        except Exception:  # noqa: BLE001
            deps["database"] = "down"
            return "down", deps
        deps["breakers"] = {n: d.breaker.state.name.lower() for n, d in downstreams.items()}
        deps["recovered_orders"] = finisher.recovered
        degraded = deps["redis"] != "ok" or any(
            d.breaker.state != BreakerState.CLOSED for d in downstreams.values()
        )
        return ("degraded" if degraded else "ok"), deps

    app = create_app(settings, health, lifespan)

    async def _from_db(key: str, fingerprint: str, claimed: bool) -> JSONResponse | None:
        """Answer from the order that holds `key`, or None when there is none."""
        row = await run_db(engine, store.by_key, key)
        if row is None:
            return None
        if claimed:  # our fresh marker must not shadow the order that holds the key
            await idem.abandon(key)
        if row["request_hash"] is not None and row["request_hash"] != fingerprint:
            raise key_reused()
        if row["status"] == PENDING:
            raise in_progress()
        metrics.idempotency_hits_total.inc()
        await idem.remember(key, fingerprint, http_status(row), view(row))
        return _answer(row, replayed=True)

    async def _idempotent_answer(key: str, fingerprint: str) -> JSONResponse | None:
        """A replay or a refusal for a key seen before; None when this request may proceed."""
        claim = await idem.begin(key, fingerprint)
        if isinstance(claim, Replay):
            metrics.idempotency_hits_total.inc()
            body, status = claim.body, claim.status
            if "status" in body and "id" in body:
                # A record stored by the previous version (201 for every order, no order_id)
                # still answers by today's contract.
                body = {**body, "order_id": body["id"]}
                status = http_status(body)
            return JsonAnswer(body, status, headers=REPLAYED_HEADERS)
        if claim is None:
            # Redis had no record: a new key, or one Redis lost. No read here: inserting the
            # order tells the two apart (the unique index raises DuplicateKey, handled below).
            return None
        assert isinstance(claim, InProgress)
        if claim.age_s < settings.request_budget_s:
            # Young marker: its request is most likely still running, and the DB would say
            # "pending" anyway. Skipping the read keeps a duplicate storm off the database.
            raise in_progress()
        # Old marker: its request finished without updating Redis, or died.
        answer = await _from_db(key, fingerprint, claimed=False)
        if answer is not None:
            return answer
        if claim.age_s > stale_marker_s:  # it died before writing the order
            await idem.take_over(key, fingerprint)
            return None
        raise in_progress()

    def _new_row(body: OrderRequest, items: list[dict[str, Any]], key: str | None,
                 fingerprint: str | None, cid: str, deadline_at: float) -> dict[str, Any]:
        now = time.time()
        # os.urandom, not uuid4: the same 20 random hex digits without building a UUID.
        return {"id": f"ord_{os.urandom(10).hex()}", "customer_id": body.customer_id,
                "items": json.dumps(items),
                "total": round(sum(i.quantity * i.unit_price for i in body.items), 2),
                "status": PENDING, "reason": None, "correlation_id": cid,
                "idempotency_key": key, "created_at": now, "updated_at": now,
                "dedupe_key": key if fingerprint is not None else None,
                "request_hash": fingerprint, "deadline_at": deadline_at,
                "compensation": None}

    async def _process(body: OrderRequest, items: list[dict[str, Any]], request: Request,
                       key: str | None, fingerprint: str | None) -> dict[str, Any]:
        deadline = deadline_of(request, settings)
        deadline = Deadline(min(deadline.at, time.time() + MAX_DEADLINE_S))
        cid = request.headers.get("x-correlation-id") or f"corr_{uuid.uuid4().hex[:16]}"
        headers = {"X-Correlation-ID": cid}
        row = _new_row(body, items, key, fingerprint, cid, deadline.at)
        order_id = row["id"]
        await run_db(engine, store.create, row)
        status, reason = "completed", None
        # What a failed order must undo: only what may have happened downstream. A call that
        # never went out (breaker open, bulkhead full) or was refused outright in a single
        # attempt (a 4xx) left nothing behind; skipping its compensation keeps an overload
        # from doubling inventory's work with releases.
        reserve_trace, charge_trace = CallTrace(), CallTrace()
        reserve_refused = charge_refused = False
        try:
            reserve = await downstreams["inventory"].call(
                "POST", "/inventory/reserve", deadline=deadline, headers=headers,
                trace=reserve_trace,
                json={"order_id": order_id, "items": [
                    {"product_id": i.product_id, "quantity": i.quantity} for i in body.items]})
            if reserve.status_code >= 400:
                status, reason = "inventory_failed", f"inventory answered {reserve.status_code}"
                reserve_refused = reserve_trace.sent == 1
        except (ResilienceError, DeadlineExceededError) as exc:
            status, reason = "inventory_failed", f"inventory: {type(exc).__name__}"
        if status == "completed":
            try:
                charge = await downstreams["payments"].call(
                    "POST", "/payments/charge", deadline=deadline, headers=headers,
                    trace=charge_trace,
                    json={"order_id": order_id, "amount": row["total"]})
                if charge.status_code >= 400:
                    status, reason = "payment_failed", f"payments answered {charge.status_code}"
                    charge_refused = charge_trace.sent == 1
            except (ResilienceError, DeadlineExceededError) as exc:
                status, reason = "payment_failed", f"payments: {type(exc).__name__}"
        done = await finisher.conclude(
            order_id, status, reason, row=row,
            release=reserve_trace.sent > 0 and not reserve_refused,
            void=charge_trace.sent > 0 and not charge_refused)
        if not settings.outbox:
            await _notify_directly(done, deadline, headers)
        return done

    async def _notify_directly(row: dict[str, Any], deadline: Deadline,
                               headers: dict[str, str]) -> None:
        """SHOP_OUTBOX=0: the order's two events go to notifications now, in the request,
        once (a stack without an outbox: lost when notifications fails or orders dies)."""
        events = [{"id": e["id"], "type": e["type"], "aggregate_id": e["aggregate_id"],
                   "payload": json.loads(e["payload"])}
                  for e in (created_event(row),
                            finished_event(row["id"], row["status"], row["reason"]))]
        try:
            response = await downstreams["notifications"].call(
                "POST", "/events/batch", deadline=deadline, headers=headers,
                json={"events": events}, retry=False)
            sent = response.status_code < 300
        except (ResilienceError, DeadlineExceededError):
            sent = False
        metrics.notifications_direct_total.labels("sent" if sent else "failed").inc()

    @app.post("/orders", status_code=201, responses={
        202: {"description": "Order recorded, but it failed and was compensated (status and "
                             "reason say why)"},
        409: {"description": "A request with this Idempotency-Key is still in progress"},
        503: {"description": "The idempotency store (Redis) is unavailable; retry"}})
    async def create_order(body: OrderRequest, request: Request,
                           idempotency_key: IdempotencyKey = None,
                           correlation_id: CorrelationId = None) -> JSONResponse:
        # Both headers are validated by their types (visible ASCII, bounded): a value the client
        # cannot forward, or longer than its column, is a 422 before any order is written.
        key = idempotency_key
        use_idem = settings.idempotency and key is not None
        dumped = body.model_dump()  # once: the fingerprint and the stored items both use it
        fingerprint = body_hash(dumped) if use_idem else None
        if use_idem:
            answer = await _idempotent_answer(key, fingerprint)
            if answer is not None:
                return answer
        try:
            row = await _process(body, dumped["items"], request, key, fingerprint)
        except DuplicateKey:
            # The key is in the database but was not in Redis (Redis restarted, evicted it,
            # or a concurrent duplicate got past it): the unique index stopped this request
            # before any work; answer like the DB says.
            answer = await _from_db(key, fingerprint, claimed=True)
            if answer is None:
                raise in_progress() from None
            return answer
        except BaseException:
            if use_idem:
                await idem.abandon(key)
            raise
        answer = view(row)
        response = _answer(row, body=answer)
        if use_idem:
            try:
                await idem.complete(key, fingerprint, http_status(row), answer,
                                    rendered=response.body)
            except Exception:  # noqa: BLE001 - the database answers replays as well
                pass
        return response

    fast_route(app, "POST", "/orders", create_order, OrderRequest,
               {"idempotency_key": IDEMPOTENCY_HEADER, "correlation_id": CORRELATION_HEADER})

    @app.get("/orders/{order_id}")
    async def get_order(order_id: IdPath) -> dict:
        row = await run_db(engine, store.get, order_id)
        if row is None:
            raise ApiError(404, "not_found", f"no order {order_id!r}")
        return view(row)

    @app.get("/orders")
    async def list_orders(limit: int = 50, status: TextQuery = None) -> dict:
        limit = max(1, min(limit, 1000))
        items = [view(r) for r in await run_db(engine, store.listing, limit, status)]
        return {"orders": items, "count": len(items)}

    @app.get("/status/breakers")
    async def breakers() -> dict:
        return {"breakers": {n: {**d.snapshot(), "owner": "orders"}
                             for n, d in downstreams.items()}}

    @app.post("/status/breakers/{downstream}/reset")
    async def reset_breaker(downstream: str, request: Request) -> dict:
        require_admin(request, settings)
        if downstream not in downstreams:
            raise ApiError(404, "not_found",
                           f"unknown downstream {downstream!r}; valid: {', '.join(DOWNSTREAMS)}")
        downstreams[downstream].breaker.reset()
        downstreams[downstream].refresh_gauge()
        return {"downstream": downstream, "state": "closed"}

    @app.get("/outbox")
    async def outbox_status() -> dict:
        return {"pending": await run_db(engine, publisher.pending),
                "last_error": publisher.last_error}

    return app

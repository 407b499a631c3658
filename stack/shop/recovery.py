"""Finishing orders: by the live request, or by the recovery sweeper when nobody will.

The rule (stack/README.md, "Crash safety"):
- Every order is finished once, by whoever wins `UPDATE ... WHERE status = 'pending'`
  (OrderStore.finish): the live request, this sweeper, or another replica's sweeper.
- A failed order is compensated after it is marked failed: payments voids it (refunds a
  charge, or leaves a tombstone that refuses a late one with 409) and inventory releases it
  (gives the stock back once, or refuses a late reservation). Both are idempotent per order
  id; until both answered, the order stays `compensation = pending` and the sweeper retries.
- The sweeper touches a `pending` order only after its request deadline plus a grace period,
  when no live request can still be working on it (each downstream call is bounded by that
  deadline). It then finishes what is already done downstream (a held reservation AND a live
  charge -> `completed`) and compensates anything else, never charging anew after the client
  was cut off. It runs at start-up and every SHOP_RECOVERY_INTERVAL_S.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from shop import metrics
from shop.background import BackgroundLoop
from shop.db import run_db
from shop.http_client import HttpClient, Response, TransportError
from shop.order_store import COMPLETED, OrderStore
from shop.settings import ShopSettings

log = logging.getLogger("shop.recovery")
BATCH = 50
CONCURRENCY = 8
CALL_TIMEOUT_S = 2.0
RECOVERED = "recovered: its request was cut off"


class Unreachable(Exception):
    """A downstream did not give a clear answer; try again on the next sweep."""


class OrderFinisher(BackgroundLoop):
    task_name = "order-recovery"

    def __init__(self, store: OrderStore, settings: ShopSettings, client: HttpClient) -> None:
        self.store, self.settings, self.client = store, settings, client
        # SHOP_RECOVERY_GRACE_S / SHOP_RECOVERY_INTERVAL_S, validated in shop.settings.
        self.grace_s, self.interval_s = settings.recovery_grace_s, settings.recovery_interval_s
        super().__init__()
        self.recovered = 0
        self.last_error: str | None = None
        self._logged_error: str | None = None

    # -- the downstreams' per-order operations, outside breakers and retries ----------
    # Compensation must not count as payments traffic (breaker statistics, retry budget,
    # downstream_requests_total); it is idempotent, so the sweeper is its retry.
    async def _request(self, method: str, service: str, path: str,
                       body: dict | None = None) -> Response:
        try:
            response = await self.client.request(method, self.settings.urls[service] + path,
                                                 json=body, timeout=CALL_TIMEOUT_S)
        except TransportError as exc:
            raise Unreachable(f"{service}: {type(exc).__name__}") from exc
        if response.status_code >= 500:
            raise Unreachable(f"{service}: http {response.status_code}")
        return response

    async def _state(self, service: str, path: str) -> str | None:
        response = await self._request("GET", service, path)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise Unreachable(f"{service}: http {response.status_code}")
        return str(response.json().get("status"))

    async def compensate(self, order_id: str, *, void: bool = True,
                         release: bool = True) -> bool:
        """Void and release; True when both are done (the order is then marked so)."""
        calls = []
        if release:
            calls.append(self._request("POST", "inventory", "/inventory/release",
                                       {"order_id": order_id}))
        if void:
            calls.append(self._request("POST", "payments", "/payments/void",
                                       {"order_id": order_id}))
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
        problems = [o for o in outcomes if isinstance(o, BaseException)]
        problems += [o for o in outcomes
                     if isinstance(o, Response) and o.status_code != 200]
        if problems:
            self.last_error = str(problems[0])[:200]
            return False
        await run_db(self.store.engine, self.store.mark_compensated, order_id)
        return True

    async def conclude(self, order_id: str, status: str, reason: str | None, *,
                       void: bool = True, release: bool = True,
                       row: dict[str, Any] | None = None) -> dict[str, Any]:
        """Finish the order if it is still pending, compensate it if it failed (`void` /
        `release`: what may have happened downstream); returns the order as stored (possibly
        finished by someone else). `row`, the pending row as written, saves re-reading it
        when this call wins."""
        owed = status != COMPLETED and (void or release)
        updated_at = await run_db(self.store.engine, self.store.finish, order_id, status,
                                  reason, owed)
        if updated_at is not None:
            metrics.orders_total.labels(status).inc()
            if owed:
                await self.compensate(order_id, void=void, release=release)
            if row is not None:
                return {**row, "status": status, "reason": reason, "updated_at": updated_at}
        stored = await run_db(self.store.engine, self.store.get, order_id)
        if stored is None:
            raise RuntimeError(f"order {order_id} vanished from the orders table")
        return stored

    # -- the sweeper ------------------------------------------------------------------
    async def _recover(self, order_id: str) -> None:
        charge = await self._state("payments", f"/payments/{order_id}")
        held = await self._state("inventory", f"/inventory/reservations/{order_id}")
        if charge == "charged" and held == "reserved":
            await self.conclude(order_id, COMPLETED, RECOVERED)
        else:
            status = "payment_failed" if held == "reserved" else "inventory_failed"
            await self.conclude(order_id, status, f"{RECOVERED}; compensated")
        self.recovered += 1

    async def sweep_once(self, now: float) -> int:
        """Recover overdue pending orders and retry unfinished compensations; returns how
        many orders were handled."""
        cutoff = now - self.grace_s
        overdue = await run_db(self.store.engine, self.store.overdue, cutoff,
                                          self.settings.request_budget_s, BATCH)
        owed = await run_db(self.store.engine, self.store.uncompensated, cutoff, BATCH)
        if not overdue and not owed:
            return 0
        gate = asyncio.Semaphore(CONCURRENCY)

        async def guarded(job: Any, order_id: str) -> bool:
            async with gate:
                try:
                    return await job(order_id) is not False
                except Unreachable as exc:
                    self.last_error = str(exc)
                    return False

        self.last_error = None
        done = await asyncio.gather(*(guarded(self._recover, o) for o in overdue),
                                    *(guarded(self.compensate, o) for o in owed))
        finished, repaid = sum(done[:len(overdue)]), sum(done[len(overdue):])
        if finished or repaid:
            log.warning("recovery: %d overdue pending orders finished, %d compensations "
                        "completed", finished, repaid)
        if self.last_error and self.last_error != self._logged_error:
            # Once per distinct problem, not every sweep: a downstream may be down for long.
            log.warning("recovery: %d orders left for the next sweep (%s)",
                        len(done) - finished - repaid, self.last_error)
        self._logged_error = self.last_error
        return finished + repaid

    async def run(self) -> None:
        while True:
            try:
                await self.sweep_once(time.time())
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the loop must survive a bad moment of the DB
                log.exception("recovery sweep failed")
            await asyncio.sleep(self.interval_s)


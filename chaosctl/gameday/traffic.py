"""Steady game-day traffic: open-loop orders with idempotency keys, a share of them replays
of earlier requests (what a client does after a timeout), each result kept for the timeline,
and every key's requests kept so a scenario can replay the keys a disruption cut off."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chaosctl.chaos.load import RECORDED_FAILED, Exchange, LoadConfig, LoadRunner
from chaosctl.gameday.timeline import CONFLICT, FAILED, OK, REPLAY, SHED, RequestRecord

# The contract's replay header, and the older name kept by the services for old clients.
REPLAY_HEADERS = ("x-idempotency-replayed", "idempotent-replayed")


def is_replay_header(headers: Mapping[str, str]) -> bool:
    return any(str(headers.get(h, "")).lower() == "true" for h in REPLAY_HEADERS)


def order_id_of(body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    value = body.get("order_id") or body.get("id")
    return str(value) if value else None


def classify(status: int | None, body: Any, sent_at: float | None = None,
             headers: Mapping[str, str] | None = None) -> str:
    """The outcome of one order request. A replay (the replay header, or an order created
    before the request was sent) is kept apart: it reports the original's outcome, not now's.
    201 is a completed order, 202 one recorded but failed."""
    if status is None or status >= 500:
        return FAILED
    if status == 429:
        return SHED
    if status == 409:
        return CONFLICT  # a replay while the original is still in progress
    if status in (200, 201, RECORDED_FAILED) and isinstance(body, dict):
        if headers is not None and is_replay_header(headers):
            return REPLAY
        created = body.get("created_at")
        if sent_at is not None and isinstance(created, int | float) and created < sent_at - 0.5:
            return REPLAY
        if status == RECORDED_FAILED:
            return FAILED
        return OK if body.get("status") == "completed" else FAILED
    return FAILED


def is_final(status: int | None) -> bool:
    """An answer that settles a key: the order exists (completed or recorded-failed) or the
    request was refused for good (4xx other than 409 in-progress and 429 shed)."""
    return status is not None and status < 500 and status not in (409, 429)


@dataclass(frozen=True)
class KeyUse:
    """One request made with an idempotency key, as the client saw it."""

    key: str
    body: dict[str, Any]
    t_sent: float  # seconds since traffic started
    t_done: float
    status: int | None
    order_id: str | None
    replayed: bool


REPLAY_AGE_S = 11.0


class GameDayTraffic:
    """The game day's steady traffic, on chaosctl's one load generator (chaos.load)."""

    def __init__(self, base_url: str, rps: float, max_duration_s: float,
                 replay_share: float = 0.1, seed: int | None = None) -> None:
        self.base_url = base_url
        self.t0 = 0.0
        self.records: list[RequestRecord] = []
        self.uses: list[KeyUse] = []
        self.replays = 0
        self._sent: list[tuple[float, str, dict[str, Any]]] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.replay_share = replay_share
        self.runner = LoadRunner(LoadConfig(
            base_url=base_url, rps=rps, duration_s=max_duration_s,
            max_requests=int(rps * max_duration_s) + 1, max_inflight=256,
            timeout_s=REPLAY_AGE_S - 1.0,
            make_request=self._request, on_response=self._record))

    def _request(self, i: int) -> tuple[str, dict[str, Any], dict[str, str]]:
        with self._lock:
            # Replay only requests old enough to have finished (the client timeout is 10 s):
            # a replay must test "same key, same answer, no second order", not manufacture
            # in-progress conflicts that a real client would not cause.
            done = [item for item in self._sent if item[0] <= time.monotonic() - REPLAY_AGE_S]
            if done and self._rng.random() < self.replay_share:
                _, key, body = done[self._rng.randrange(len(done))]
                self.replays += 1
            else:
                key = f"gd-{uuid.uuid4().hex}"
                body = {"customer_id": f"gameday-{i % 500}", "items": [
                    {"product_id": f"SKU-{self._rng.randint(1, 100):03d}",
                     "quantity": self._rng.randint(1, 3), "unit_price": 12.5}]}
                self._sent.append((time.monotonic(), key, body))
                if len(self._sent) > 2000:
                    self._sent.pop(0)
        return "/orders", body, {"Idempotency-Key": key, "X-Correlation-ID": f"gameday-{i}"}

    def _record(self, ex: Exchange) -> None:
        now = self.now()
        self.records.append(RequestRecord(t=now, latency_ms=ex.latency_s * 1000.0,
                                          outcome=classify(ex.status, ex.body,
                                                           time.time() - ex.latency_s,
                                                           ex.headers)))
        key = ex.request_headers.get("Idempotency-Key")
        if key:
            self.uses.append(KeyUse(key, ex.request_body, now - ex.latency_s, now, ex.status,
                                    order_id_of(ex.body), is_replay_header(ex.headers)))

    def first_uses(self) -> dict[str, KeyUse]:
        """Each key's first request (by send time) as the client saw it."""
        first: dict[str, KeyUse] = {}
        for use in sorted(list(self.uses), key=lambda u: u.t_sent):
            first.setdefault(use.key, use)
        return first

    def cut_off(self, t0: float, t1: float) -> list[KeyUse]:
        """First requests that a disruption between t0 and t1 cut off: in flight at some
        moment of it and never settled (no answer, 5xx, or still in progress)."""
        return [u for u in self.first_uses().values()
                if u.t_sent <= t1 and u.t_done >= t0 and not is_final(u.status)]

    def settled_before(self, t: float) -> list[KeyUse]:
        """First requests that got an order back (201/202 with an order id) before t."""
        return [u for u in self.first_uses().values()
                if u.t_done < t and u.order_id and u.status in (200, 201, RECORDED_FAILED)]

    def now(self) -> float:
        return time.monotonic() - self.t0

    def start(self) -> GameDayTraffic:
        self.t0 = time.monotonic()
        self.runner.start()
        return self

    def stop(self) -> dict[str, Any]:
        self.runner.stop()
        return self.runner.join(timeout=15.0)

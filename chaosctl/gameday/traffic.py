"""Steady game-day traffic: open-loop orders with idempotency keys, a share of them replays
of earlier requests (what a client does after a timeout), each result kept for the timeline."""

from __future__ import annotations

import random
import threading
import time
import uuid
from typing import Any

from chaosctl.chaos.load import LoadConfig, LoadRunner
from chaosctl.gameday.timeline import CONFLICT, FAILED, OK, REPLAY, SHED, RequestRecord


def classify(status: int | None, body: Any, sent_at: float | None = None) -> str:
    """The outcome of one order request; `sent_at` (unix time) tells replays apart: their
    answer is an order created before the request was sent."""
    if status is None or status >= 500:
        return FAILED
    if status == 429:
        return SHED
    if status == 409:
        return CONFLICT  # a replay while the original is still in progress
    if status in (200, 201) and isinstance(body, dict):
        created = body.get("created_at")
        if sent_at is not None and isinstance(created, int | float) and created < sent_at - 0.5:
            return REPLAY
        return OK if body.get("status") == "completed" else FAILED
    return FAILED


REPLAY_AGE_S = 11.0


class Traffic:
    def __init__(self, base_url: str, rps: float, max_duration_s: float,
                 replay_share: float = 0.1, seed: int | None = None) -> None:
        self.t0 = 0.0
        self.records: list[RequestRecord] = []
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

    def _record(self, status: int | None, body: Any, latency_s: float) -> None:
        self.records.append(RequestRecord(t=self.now(), latency_ms=latency_s * 1000.0,
                                          outcome=classify(status, body,
                                                           time.time() - latency_s)))

    def now(self) -> float:
        return time.monotonic() - self.t0

    def start(self) -> Traffic:
        self.t0 = time.monotonic()
        self.runner.start()
        return self

    def stop(self) -> dict[str, Any]:
        self.runner.stop()
        return self.runner.join(timeout=15.0)

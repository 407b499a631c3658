"""The measured client: open-loop orders on chaosctl's one load generator (chaos.load), each
with its own Idempotency-Key under a per-cell prefix (so the database can be asked about
exactly these orders), recorded as logical requests. With `retries` it is the study's
aggressive client: every failed answer is re-sent at once with the same key."""

from __future__ import annotations

import threading
import time
from typing import Any

from chaosctl.chaos.load import Exchange, LoadConfig, LoadRunner, retry_failed_orders
from chaosctl.experiment.measure import Request, outcome

PRODUCTS = ("prod-001", "prod-002", "prod-003", "prod-004")  # the study's client contract


class CellTraffic:
    def __init__(self, base_url: str, rps: float, timeout_s: float, prefix: str,
                 max_duration_s: float, retries: int = 0) -> None:
        self.prefix = prefix
        self.retries = retries
        self.t0 = 0.0
        self.requests: list[Request] = []
        self.inflight: dict[int, float] = {}  # arrival -> when its first attempt was sent
        self._attempts: dict[int, int] = {}
        self._latency: dict[int, float] = {}
        self._lock = threading.Lock()
        self.config = LoadConfig(
            base_url=base_url, rps=rps, duration_s=max_duration_s,
            max_requests=int(rps * max_duration_s * (1 + retries)) + 100, max_inflight=512,
            timeout_s=timeout_s, retries=retries,
            retry_on=retry_failed_orders if retries else None,
            make_request=self._request, on_response=self._record)
        self.runner = LoadRunner(self.config)

    def now(self) -> float:
        return time.monotonic() - self.t0

    def _request(self, i: int) -> tuple[str, dict[str, Any], dict[str, str]]:
        with self._lock:
            self.inflight.setdefault(i, self.now())
        body = {"customer_id": f"experiment-{i % 500}",
                "items": [{"product_id": PRODUCTS[i % len(PRODUCTS)], "quantity": 1,
                           "unit_price": 10.0}]}
        return "/orders", body, {"Idempotency-Key": f"{self.prefix}{i}",
                                 "X-Correlation-ID": f"{self.prefix}{i}"}

    def _record(self, ex: Exchange) -> None:
        with self._lock:
            i = ex.arrival
            n = self._attempts.get(i, 0) + 1
            self._attempts[i] = n
            self._latency[i] = self._latency.get(i, 0.0) + ex.latency_s
            # The generator re-sends while attempts remain and retry_on says so (no answer
            # is always re-sent): the same rule decides when this request is final.
            again = n <= self.retries and (ex.status is None
                                          or retry_failed_orders(ex.status, ex.body))
            if again or i not in self.inflight:
                return
            self.requests.append(Request(self.inflight.pop(i), self._latency.pop(i) * 1000.0,
                                         outcome(ex.status, ex.body), n))
            self._attempts.pop(i, None)

    def observed_until(self) -> float:
        """Every request sent before this moment has its final answer."""
        with self._lock:
            return min([self.now(), *self.inflight.values()])

    def snapshot(self) -> list[Request]:
        with self._lock:
            return list(self.requests)

    def start(self) -> CellTraffic:
        self.t0 = time.monotonic()
        self.runner.start()
        return self

    def finish(self, wait_s: float) -> None:
        """No new arrivals; let those in flight get their answer (up to wait_s), then stop."""
        self.config.duration_s = 0.0  # the generator ends its arrivals (none in flight cut)
        deadline = time.monotonic() + wait_s
        while self.runner.running() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.stop()

    def stop(self) -> None:
        self.runner.stop()
        self.runner.join(timeout=10.0)

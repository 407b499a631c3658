"""Light, bounded order traffic for the playbook e2e tests and the detect/recover benchmark.

A scheduler thread submits orders at `rate` per second to a small thread pool (httpx to the
gateway on 127.0.0.1 only). Bounded in time (`max_seconds`) and count (`max_orders`); orders
are skipped, not queued, when `max_pending` are in flight, so a slow stack is never flooded.

`client_timeout` + `resend`: a client that gives up after `client_timeout` seconds and resends
the SAME Idempotency-Key up to `resend` times (what makes an idempotency-conflict storm).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx


class Traffic:
    def __init__(self, gateway_url: str, rate: float = 15.0, *, max_seconds: float = 300.0,
                 max_orders: int = 10_000, max_pending: int = 48,
                 client_timeout: float = 10.0, resend: int = 0) -> None:
        assert gateway_url.startswith("http://127.0.0.1:"), "traffic stays on loopback"
        self.url = gateway_url
        self.rate = rate
        self.max_seconds = max_seconds
        self.max_orders = max_orders
        self.max_pending = max_pending
        self.client_timeout = client_timeout
        self.resend = resend
        self.codes: Counter[str] = Counter()
        self._pending = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=max_pending, thread_name_prefix="traffic")
        self._client = httpx.Client(timeout=client_timeout, trust_env=False,
                                    limits=httpx.Limits(max_connections=max_pending + 8))
        self._thread = threading.Thread(target=self._schedule, name="traffic", daemon=True)

    def __enter__(self) -> Traffic:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self) -> Traffic:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()

    def _schedule(self) -> None:
        start = time.monotonic()
        sent = 0
        while not self._stop.is_set() and sent < self.max_orders:
            if time.monotonic() - start > self.max_seconds:
                break
            with self._lock:
                busy = self._pending >= self.max_pending
                if not busy:
                    self._pending += 1
            if busy:
                self.codes["skipped"] += 1
            else:
                self._pool.submit(self._order, sent)
            sent += 1
            # Next arrival on the fixed schedule, so slow answers do not lower the rate.
            self._stop.wait(max(0.0, start + sent / self.rate - time.monotonic()))

    def _order(self, i: int) -> None:
        key = f"e2e-{uuid.uuid4().hex}"
        body = {"customer_id": f"cust-{i % 50}",
                "items": [{"product_id": f"SKU-{1 + i % 100:03d}", "quantity": 1,
                           "unit_price": 9.5}]}
        try:
            for _attempt in range(1 + self.resend):
                if self._stop.is_set():
                    return
                try:
                    response = self._client.post(f"{self.url}/orders", json=body,
                                                 headers={"Idempotency-Key": key})
                except httpx.TimeoutException:
                    self.codes["timeout"] += 1
                    continue  # resend the same key: the first one is still in progress
                except httpx.HTTPError:
                    self.codes["error"] += 1
                    return
                # 201 completed, 202 recorded but failed: count by the order's own status.
                status = (response.json().get("status") if response.status_code in (201, 202)
                          else None)
                self.codes[str(status or response.status_code)] += 1
                if response.status_code != 409:
                    return
        finally:
            with self._lock:
                self._pending -= 1

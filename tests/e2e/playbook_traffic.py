"""Light, bounded order traffic for the playbook e2e tests and the detect/recover benchmark.

A thin shape over chaosctl's one load generator (chaosctl.chaos.load): open-loop orders at
`rate` per second to the gateway on 127.0.0.1 only, bounded in time (`max_seconds`) and count
(`max_orders`); orders are skipped, not queued, when `max_pending` are in flight, so a slow
stack is never flooded. `codes` counts outcomes: an order's own status for 201/202
("completed", "payment_failed", ...), else the HTTP status, "timeout", "error" or "skipped".

`client_timeout` + `resend`: a client that gives up after `client_timeout` seconds and resends
the SAME Idempotency-Key up to `resend` times (what makes an idempotency-conflict storm); a
409 (the first request still in progress) is resent the same way.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from typing import Any

from chaosctl.chaos.load import Exchange, LoadConfig, LoadRunner


class IncidentTraffic:
    def __init__(self, gateway_url: str, rate: float = 15.0, *, max_seconds: float = 300.0,
                 max_orders: int = 10_000, max_pending: int = 48,
                 client_timeout: float = 10.0, resend: int = 0) -> None:
        self._codes: Counter[str] = Counter()
        self._keys: dict[int, str] = {}  # arrival -> its Idempotency-Key, kept for resends
        self._lock = threading.Lock()
        self.runner = LoadRunner(LoadConfig(
            base_url=gateway_url, rps=rate, duration_s=max_seconds,
            max_requests=max_orders * (1 + resend), max_inflight=max_pending,
            timeout_s=client_timeout, retries=resend, retry_on=self._resend,
            make_request=self._request, on_response=self._record))

    @property
    def codes(self) -> Counter[str]:
        with self._lock:
            codes = Counter(self._codes)
        skipped = self.runner.stats()["skipped"]
        if skipped:
            codes["skipped"] += skipped
        return codes

    def __enter__(self) -> IncidentTraffic:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self) -> IncidentTraffic:
        self.runner.start()
        return self

    def stop(self) -> None:
        self.runner.stop()
        self.runner.join(timeout=30)

    def order_body(self, i: int) -> dict[str, Any]:
        """The order of arrival `i` (a subclass may send something else)."""
        return {"customer_id": f"cust-{i % 50}",
                "items": [{"product_id": f"SKU-{1 + i % 100:03d}", "quantity": 1,
                           "unit_price": 9.5}]}

    def _request(self, i: int) -> tuple[str, dict[str, Any], dict[str, str]]:
        with self._lock:
            key = self._keys.setdefault(i, f"e2e-{uuid.uuid4().hex}")
        return "/orders", self.order_body(i), {"Idempotency-Key": key}

    @staticmethod
    def _resend(status: int, _body: Any) -> bool:
        return status == 409  # the same key is still in progress: ask again

    def _record(self, ex: Exchange) -> None:
        if ex.status is None:
            code = ex.error or "error"
        elif ex.status in (201, 202) and isinstance(ex.body, dict):
            code = str(ex.body.get("status") or ex.status)
        else:
            code = str(ex.status)
        with self._lock:
            self._codes[code] += 1
            if ex.status is not None and ex.status != 409:
                self._keys.pop(ex.arrival, None)


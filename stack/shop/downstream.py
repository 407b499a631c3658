"""Calls to another service through bulkhead, circuit breaker, retries and per-hop timeouts.

Order per attempt: breaker permit (fail fast when open) -> bulkhead slot (bounded wait) ->
HTTP call with min(per-hop timeout, time left before the deadline). Retries wrap attempts,
use full jitter and are limited by a retry budget, so a dead downstream never sees 3x traffic.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from shop import metrics
from shop.http_client import HttpClient, Response, Timeout, TransportError
from shop.resilience import (
    DEADLINE_HEADER,
    BreakerConfig,
    BreakerOpenError,
    BreakerState,
    Bulkhead,
    BulkheadFullError,
    CircuitBreaker,
    Deadline,
    DeadlineExceededError,
    DownstreamError,
    RetryBudget,
    RetryPolicy,
    call_with_retry,
)
from shop.settings import ShopSettings

RETRYABLE_STATUS = {502, 503, 504}


class CallTrace:
    """How many attempts of one logical call went out on the wire. Zero means the downstream
    cannot have acted on it (breaker open, bulkhead full, deadline gone before sending), so a
    failed order owes it no compensation."""

    __slots__ = ("sent",)

    def __init__(self) -> None:
        self.sent = 0


class Downstream:
    def __init__(self, name: str, settings: ShopSettings, client: HttpClient) -> None:
        self.name = name
        self.base_url = settings.urls[name]
        self.settings = settings
        self.client = client
        self.timeout_s = settings.hop_timeouts.get(name, 2.0)
        self.breaker = CircuitBreaker(
            name,
            BreakerConfig(
                failure_rate_threshold=settings.breaker_failure_rate,
                window_s=settings.breaker_window_s,
                minimum_calls=settings.breaker_min_calls,
                open_duration_s=settings.breaker_open_s,
                half_open_probes=settings.half_open_probes,
                probe_timeout_s=self.timeout_s + 1.0,
            ),
            on_state_change=lambda _n, state: self._set_gauge(int(state)),
        )
        # Metric children looked up once, and the breaker gauge written only when its value
        # changes: `.labels()` and the multiprocess file write on every call were ~5 % of the
        # gateway's CPU (issue 13).
        self._gauge = metrics.breaker_state.labels(name)
        self._gauge_value = 0
        self._gauge.set(0)
        self._requests = metrics.downstream_requests_total.labels(name)
        self._duration = metrics.downstream_request_duration_seconds.labels(name)
        self._retries_sent = metrics.retry_requests_total.labels(name)
        # Gateway -> orders gets its own, larger bulkhead: it is where overload is shed (429),
        # sized so a slow dependency's timeouts are absorbed but a 10x spike is refused fast
        # instead of queueing into multi-second latencies.
        size = settings.gateway_bulkhead if name == "orders" else settings.bulkhead_size
        self.bulkhead = Bulkhead(name, size, settings.bulkhead_wait_s)
        self.budget = RetryBudget(ratio=settings.retry_budget_ratio,
                                  min_retries_per_s=settings.retry_budget_floor)
        self.policy = RetryPolicy(max_attempts=settings.retry_max_attempts
                                  if settings.retries else 1,
                                  base_delay_s=settings.retry_backoff_s,
                                  jitter=settings.retry_jitter)

    def snapshot(self) -> dict[str, Any]:
        snap = self.breaker.snapshot()
        if not self.settings.breakers:
            snap["enabled"] = False
        return snap

    def refresh_gauge(self) -> None:
        self._set_gauge(int(self.breaker.state))

    def _set_gauge(self, value: int) -> None:
        if value != self._gauge_value:
            self._gauge_value = value
            self._gauge.set(value)

    async def _attempt(self, method: str, path: str, deadline: Deadline,
                       json: Any, headers: dict[str, str],
                       trace: CallTrace | None = None) -> Response:
        permit = None
        if self.settings.breakers:
            permit = self.breaker.try_acquire()
            self.refresh_gauge()
            if permit is None:
                metrics.downstream_errors_total.labels(self.name, "breaker_open").inc()
                raise BreakerOpenError(self.name)
        try:
            timeout = deadline.hop_timeout(self.timeout_s)
        except DeadlineExceededError:
            if permit is not None:
                permit.release()  # nothing was sent: no outcome; a probe slot is freed
            raise
        try:
            if self.settings.bulkheads:
                async with self.bulkhead.slot():
                    response = await self._send(method, path, deadline, json, headers, timeout,
                                                trace)
            else:
                response = await self._send(method, path, deadline, json, headers, timeout,
                                            trace)
        except BulkheadFullError:
            if permit is not None:
                # Refused locally: neither a success nor a failure of the downstream. Counted
                # as a success, a full bulkhead diluted the failure rate and kept the breaker
                # closed (inventory_lock).
                permit.release()
            metrics.bulkhead_rejections_total.labels(self.name).inc()
            metrics.downstream_errors_total.labels(self.name, "bulkhead_full").inc()
            raise
        except asyncio.CancelledError:
            if permit is not None:
                # Our caller went away (e.g. its client hung up): nothing is known of the
                # downstream. No outcome; a half-open probe gives its slot back at once
                # instead of holding it until the probe timeout reopens the breaker.
                permit.release()
            raise
        except Timeout as exc:
            self._failed(permit, "timeout")
            raise DownstreamError(self.name, "timeout") from exc
        except TransportError as exc:
            self._failed(permit, "connect")
            raise DownstreamError(self.name, "connect") from exc
        finally:
            self.refresh_gauge()
        if response.status_code >= 500 or response.status_code == 429:
            self._failed(permit, f"http_{response.status_code}")
            raise DownstreamError(self.name, f"http_{response.status_code}",
                                  status=response.status_code,
                                  retryable=response.status_code in RETRYABLE_STATUS)
        if permit is not None:
            permit.success()
            self.refresh_gauge()
        return response

    def _failed(self, permit, reason: str) -> None:  # noqa: ANN001
        metrics.downstream_errors_total.labels(self.name, reason).inc()
        if permit is not None:
            permit.failure()
            self.refresh_gauge()

    async def _send(self, method: str, path: str, deadline: Deadline, json: Any,
                    headers: dict[str, str], timeout: float,
                    trace: CallTrace | None = None) -> Response:
        self._requests.inc()
        if trace is not None:
            trace.sent += 1
            if trace.sent > 1:  # a retry on the wire (retry_attempts_total counts decisions)
                self._retries_sent.inc()
        start = time.perf_counter()
        try:
            return await self.client.request(
                method, self.base_url + path, json=json,
                headers={**headers, DEADLINE_HEADER: deadline.to_header()}, timeout=timeout,
            )
        finally:
            self._duration.observe(time.perf_counter() - start)

    def _retryable(self, exc: BaseException, deadline: Deadline) -> bool:
        """A retryable failure; after a timeout, only while a whole attempt still fits
        before the deadline (with 4 attempts, timed-out calls would otherwise outlast the
        caller's own timeout: the gateway gives orders 8 s, three 2.5 s attempts fit)."""
        if not isinstance(exc, DownstreamError) or not exc.retryable:
            return False
        return exc.reason != "timeout" or deadline.remaining() > self.timeout_s

    async def call(self, method: str, path: str, *, deadline: Deadline, json: Any = None,
                   headers: dict[str, str] | None = None, retry: bool = True,
                   trace: CallTrace | None = None) -> Response:
        """One logical call. Raises BreakerOpenError, BulkheadFullError, DownstreamError or
        DeadlineExceededError; returns the response for any status below 500. `trace`
        counts the attempts that were sent."""
        headers = headers or {}
        trace = trace if trace is not None else CallTrace()

        async def attempt() -> Response:
            return await self._attempt(method, path, deadline, json, headers, trace)

        if not retry or self.policy.max_attempts <= 1:
            return await attempt()
        return await call_with_retry(
            attempt,
            policy=self.policy,
            budget=self.budget,
            is_retryable=lambda exc: self._retryable(exc, deadline),
            deadline_remaining=deadline.remaining,
            on_retry=lambda _n, _exc: metrics.retry_attempts_total.labels(self.name).inc(),
            on_budget_exhausted=lambda: metrics.retry_budget_exhausted_total.labels(
                self.name
            ).inc(),
            on_backoff=lambda delay: metrics.retry_backoff_seconds_total.labels(
                self.name
            ).inc(delay),
        )


def breaker_is_open(downstream: Downstream) -> bool:
    return downstream.settings.breakers and downstream.breaker.state == BreakerState.OPEN

"""The one bounded load generator against the gateway (chaos load, game day, tests, benchmarks).

Open loop (the default): arrivals follow a fixed schedule (`rps` per second) whatever the
responses do, as real users do, so a slow stack sees its queue grow instead of the generator
politely slowing down. Every run is bounded three ways: a duration, a total request cap, and a
cap on requests in flight (arrivals beyond it are counted as `skipped`, never queued without
limit).

Closed loop (`concurrency=N`): N workers each send their next order as soon as the previous one
is answered, which measures what the stack can serve rather than what it is offered. `rps`
then only caps the rate (0: uncapped); the duration and request cap still bound the run.
Targets must be loopback addresses.

`LoadGenerator` is the async core (`await run()`, `stop()`, `stats()`); `LoadRunner` runs one
in a background thread for synchronous callers (`start()`, `stop()`, `stats()`, `join()`).
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from chaosctl.clients.http import async_http_client, require_loopback
from chaosctl.errors import InvalidInputError
from chaosctl.stats import percentile

# (status code, parsed JSON body or None) -> retry this arrival?
RetryPredicate = Callable[[int, Any], bool]
# arrival number -> (path, JSON body, headers)
RequestFactory = Callable[[int], tuple[str, dict[str, Any], dict[str, str]]]
# One finished request (answered or not) -> None
ResponseHook = Callable[["Exchange"], None]
# The order contract: 201 a completed order, 202 an order recorded but failed.
RECORDED_FAILED = 202


@dataclass(frozen=True)
class Exchange:
    """One request and what came back, for per-request listeners (the game-day timeline)."""

    arrival: int
    path: str
    request_body: dict[str, Any]
    request_headers: dict[str, str]
    status: int | None  # None: no answer (timeout, connection refused)
    body: Any  # parsed JSON body, or None
    headers: dict[str, str]  # response headers, lower-case names ({} without an answer)
    latency_s: float
    error: str | None = None  # without an answer: "timeout" or "error" (refused, reset, ...)


def order_request(i: int) -> tuple[str, dict[str, Any], dict[str, str]]:
    """A small valid order; a fresh Idempotency-Key so every attempt is a new write."""
    body = {"customer_id": f"load-{i % 1000}",
            "items": [{"product_id": f"SKU-{random.randint(1, 100):03d}", "quantity": 1,
                       "unit_price": 9.99}]}
    return "/orders", body, {"Idempotency-Key": uuid.uuid4().hex,
                             "X-Correlation-ID": f"chaosctl-load-{i}"}


def retry_failed_orders(status: int, body: Any) -> bool:
    """What an impatient client retries: 5xx, 429, and orders that did not complete."""
    if status >= 500 or status in (429, RECORDED_FAILED):
        return True
    return isinstance(body, dict) and body.get("status") not in (None, "completed")


@dataclass
class LoadConfig:
    base_url: str
    rps: float
    duration_s: float
    max_requests: int  # every HTTP request counts, retries included
    max_inflight: int = 256
    timeout_s: float = 5.0
    retries: int = 0  # immediate re-sends per arrival when `retry_on` says so
    retry_on: RetryPredicate | None = None
    make_request: RequestFactory = order_request
    on_response: ResponseHook | None = None  # per-request results (the game-day timeline)
    # Closed loop: this many workers send back-to-back; rps then caps the rate (0: no cap).
    concurrency: int | None = None

    def __post_init__(self) -> None:
        require_loopback(self.base_url, "load target")
        if self.concurrency is not None and self.concurrency <= 0:
            raise InvalidInputError(f"load concurrency must be above 0, got {self.concurrency}")
        closed = self.concurrency is not None
        if self.rps < 0 or (self.rps == 0 and not closed):
            raise InvalidInputError("load needs rps above 0 (0 means uncapped only with "
                                    "concurrency, the closed loop)")
        if self.duration_s <= 0 or self.max_requests <= 0:
            raise InvalidInputError("load needs rps, duration and max_requests above 0")


@dataclass
class LoadStats:
    """Live counters; `snapshot()` is what reports and state files carry."""

    arrivals: int = 0
    sent: int = 0  # HTTP requests made, retries included
    ok: int = 0  # 2xx answers except 202
    # 202: the order was recorded but failed (payment_failed / inventory_failed). Neither a
    # success nor a transport error: the stack answered, the order did not go through.
    recorded_failed: int = 0
    errors: int = 0  # no answer (timeout, connection refused)
    retries: int = 0
    skipped: int = 0  # arrivals dropped because max_inflight requests were pending
    status_counts: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)  # seconds, answered requests
    started_at: float = 0.0
    ended_at: float | None = None
    stop_reason: str | None = None

    def snapshot(self) -> dict[str, Any]:
        lat = sorted(self.latencies)  # sorted once; percentile's own sort is then linear
        end = self.ended_at or time.time()

        def ms(q: float) -> float | None:
            value = percentile(lat, q * 100)
            return None if value is None else round(value * 1000, 1)

        return {
            "arrivals": self.arrivals, "sent": self.sent, "ok": self.ok,
            "recorded_failed": self.recorded_failed, "errors": self.errors,
            "retries": self.retries, "skipped": self.skipped,
            "status_counts": dict(sorted(self.status_counts.items())),
            "p50_ms": ms(0.50), "p95_ms": ms(0.95), "p99_ms": ms(0.99),
            "elapsed_s": round(end - self.started_at, 2) if self.started_at else 0.0,
            "stop_reason": self.stop_reason,
        }


class LoadGenerator:
    """The async core. One instance runs once."""

    def __init__(self, config: LoadConfig) -> None:
        self.config = config
        self.stats_ = LoadStats()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested = False

    def stats(self) -> dict[str, Any]:
        return self.stats_.snapshot()

    def stop(self) -> None:
        """Ask the run to end (safe from any thread, before or during `run`)."""
        self._stop_requested = True
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:
                pass  # the run ended (and closed its loop) between the check and the call

    async def run(self) -> dict[str, Any]:
        cfg, st = self.config, self.stats_
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        if self._stop_requested:
            self._stop.set()
        width = cfg.concurrency if cfg.concurrency is not None else cfg.max_inflight
        st.started_at = time.time()
        t0 = time.monotonic()
        async with async_http_client(cfg.base_url, timeout=cfg.timeout_s,
                                     max_connections=width) as client:
            if cfg.concurrency is None:
                await self._open_loop(client, t0)
            else:
                await self._closed_loop(client, t0, cfg.concurrency)
        st.ended_at = time.time()
        return st.snapshot()

    def _end_reason(self, t0: float) -> str | None:
        """Why the run must end now, or None (the same three bounds for both loops)."""
        cfg, st = self.config, self.stats_
        assert self._stop is not None
        if self._stop.is_set():
            return "stopped"
        if time.monotonic() - t0 >= cfg.duration_s:
            return "duration"
        if st.sent >= cfg.max_requests or st.arrivals >= cfg.max_requests:
            return "max_requests"
        return None

    async def _pause(self, seconds: float) -> None:
        """Sleep up to `seconds` (at most 0.5 s at a time), waking early on stop()."""
        assert self._stop is not None
        wait = max(0.0, min(seconds, 0.5))
        if wait:
            try:
                await asyncio.wait_for(self._stop.wait(), wait)
            except TimeoutError:
                pass

    async def _open_loop(self, client: httpx.AsyncClient, t0: float) -> None:
        cfg, st = self.config, self.stats_
        assert self._stop is not None
        pending: set[asyncio.Task[None]] = set()
        while True:
            reason = self._end_reason(t0)
            if reason is not None:
                st.stop_reason = reason
                break
            # Catch up on every arrival due by now (one wake-up can cover several).
            due = int((time.monotonic() - t0) * cfg.rps) + 1
            # Each arrival sends at least one request: never schedule more than the cap.
            while st.arrivals < min(due, cfg.max_requests) and st.sent < cfg.max_requests:
                i = st.arrivals
                st.arrivals += 1
                if len(pending) >= cfg.max_inflight:
                    st.skipped += 1
                    continue
                task = asyncio.create_task(self._arrival(client, i))
                pending.add(task)
                task.add_done_callback(pending.discard)
            await self._pause(st.arrivals / cfg.rps - (time.monotonic() - t0))
        if pending:
            # Let in-flight requests finish (bounded by their timeout), unless stopped.
            if self._stop.is_set():
                for task in pending:
                    task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _closed_loop(self, client: httpx.AsyncClient, t0: float, workers: int) -> None:
        cfg, st = self.config, self.stats_
        assert self._stop is not None

        async def worker() -> None:
            while True:
                reason = self._end_reason(t0)
                if reason is not None:
                    st.stop_reason = st.stop_reason or reason
                    return
                i = st.arrivals
                if cfg.rps > 0:
                    # The cap: arrival i is not sent before i / rps seconds into the run.
                    early = t0 + i / cfg.rps - time.monotonic()
                    if early > 0:
                        await self._pause(early)
                        continue  # another worker may have taken arrival i meanwhile
                st.arrivals += 1
                await self._arrival(client, i)

        tasks = [asyncio.create_task(worker()) for _ in range(workers)]
        stopper = asyncio.create_task(self._stop.wait())
        done = asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.wait({done, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if self._stop.is_set():
            # Stopped: cut in-flight requests short, as the open loop does.
            st.stop_reason = "stopped"
            for task in tasks:
                task.cancel()
        await done
        stopper.cancel()
        await asyncio.gather(stopper, return_exceptions=True)

    async def _arrival(self, client: httpx.AsyncClient, i: int) -> None:
        cfg, st = self.config, self.stats_
        for attempt in range(cfg.retries + 1):
            if st.sent >= cfg.max_requests:
                return
            path, body, headers = cfg.make_request(i)
            st.sent += 1
            if attempt:
                st.retries += 1
            start = time.perf_counter()
            try:
                response = await client.post(path, json=body, headers=headers)
            except httpx.HTTPError as exc:
                st.errors += 1
                if cfg.on_response is not None:
                    why = "timeout" if isinstance(exc, httpx.TimeoutException) else "error"
                    cfg.on_response(Exchange(i, path, body, headers, None, None, {},
                                             time.perf_counter() - start, why))
                retry = True
            else:
                latency = time.perf_counter() - start
                st.latencies.append(latency)
                code = str(response.status_code)
                st.status_counts[code] = st.status_counts.get(code, 0) + 1
                if response.status_code == RECORDED_FAILED:
                    st.recorded_failed += 1
                elif 200 <= response.status_code < 300:
                    st.ok += 1
                wants_body = cfg.on_response is not None or (
                    cfg.retry_on is not None and attempt < cfg.retries)
                parsed = None
                if wants_body:
                    try:
                        parsed = response.json()
                    except ValueError:
                        parsed = None
                if cfg.on_response is not None:
                    cfg.on_response(Exchange(
                        i, path, body, headers, response.status_code, parsed,
                        {k.lower(): v for k, v in response.headers.items()}, latency))
                if cfg.retry_on is None or attempt >= cfg.retries:
                    return
                retry = cfg.retry_on(response.status_code, parsed)
            if not retry or cfg.retry_on is None:
                return


class LoadRunner:
    """A `LoadGenerator` in a background thread, for synchronous callers."""

    def __init__(self, config: LoadConfig) -> None:
        self.generator = LoadGenerator(config)
        self._thread: threading.Thread | None = None
        self.result: dict[str, Any] | None = None
        self.error: BaseException | None = None

    def start(self) -> LoadRunner:
        def target() -> None:
            try:
                self.result = asyncio.run(self.generator.run())
            except BaseException as exc:  # noqa: BLE001 - surfaced by join()
                self.error = exc

        self._thread = threading.Thread(target=target, name="chaosctl-load", daemon=True)
        self._thread.start()
        return self

    def stats(self) -> dict[str, Any]:
        return self.generator.stats()

    def stop(self) -> None:
        self.generator.stop()

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout: float | None = None) -> dict[str, Any]:
        if self._thread is not None:
            self._thread.join(timeout)
        if self.error is not None:
            raise self.error
        return self.result if self.result is not None else self.stats()

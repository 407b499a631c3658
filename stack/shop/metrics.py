"""Every metric of the stack, by the runbook's names.

With PROMETHEUS_MULTIPROC_DIR set (the runtime sets it per service), replicas of one service
write to shared files and /metrics adds them up, so `scale orders=3` keeps counters right.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.185, 0.25, 0.38, 0.5, 1.0, 2.0, 5.0, 10.0)

http_requests_total = Counter(
    "http_requests_total", "HTTP requests served", ["service", "method", "route", "code"]
)
http_request_duration_seconds = Histogram(
    "http_request_duration_seconds", "HTTP request latency", ["service", "method", "route"],
    buckets=LATENCY_BUCKETS,
)
orders_total = Counter("orders_total", "Orders by final status", ["status"])
downstream_requests_total = Counter(
    "downstream_requests_total", "Calls to a downstream, retries included", ["to_service"]
)
downstream_errors_total = Counter(
    "downstream_errors_total", "Failed calls to a downstream", ["to_service", "reason"]
)
downstream_request_duration_seconds = Histogram(
    "downstream_request_duration_seconds", "Latency of one call to a downstream",
    ["to_service"], buckets=LATENCY_BUCKETS,
)
breaker_state = Gauge(
    "breaker_state", "Circuit breaker state: 0 closed, 1 open, 2 half-open", ["downstream"],
    multiprocess_mode="livemax",
)
bulkhead_rejections_total = Counter(
    "bulkhead_rejections_total", "Calls rejected because the bulkhead was full", ["downstream"]
)
load_shed_total = Counter("load_shed_total", "Requests shed with 429 by the gateway")
outbox_pending = Gauge(
    "outbox_pending", "Outbox events not yet published", multiprocess_mode="livemax"
)
outbox_published_total = Counter("outbox_published_total", "Outbox events delivered")
idempotency_hits_total = Counter(
    "idempotency_hits_total", "Requests answered by replaying a stored response"
)
idempotency_conflicts_total = Counter(
    "idempotency_conflicts_total", "Concurrent duplicates rejected with 409"
)
retry_attempts_total = Counter("retry_attempts_total", "Retries made", ["downstream"])
retry_budget_exhausted_total = Counter(
    "retry_budget_exhausted_total", "Retries refused by the retry budget", ["downstream"]
)
chaos_injected_total = Counter(
    "chaos_injected_total", "Faults applied to requests", ["service", "fault"]
)
payments_charges_total = Counter("payments_charges_total", "Charges recorded", ["outcome"])
notifications_received_total = Counter("notifications_received_total", "Events accepted")
notifications_duplicates_total = Counter(
    "notifications_duplicates_total", "Events received again and ignored"
)


def render() -> tuple[bytes, str]:
    """The exposition text for /metrics, summed across replicas in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST

"""Every metric of the stack, by the runbook's names.

With PROMETHEUS_MULTIPROC_DIR set (the runtime sets it per service), replicas of one service
write to shared files and /metrics adds them up, so `scale orders=3` keeps counters right.

`init_labels(service)` runs once at start-up (from the app factory): every label value that a
recording rule or playbook reads is created at 0 there, so a rate over it is 0, never absent.
Absent numerators made `order_success_rate` read as healthy (or vanish) during a total outage.
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


class _HttpRequests:
    """http_requests_total with `code` (ours) AND `status` (the seed study's name, same value).

    The study's analysis scripts query `http_requests_total{status=~"2.."}`; ours query
    `code`. One extra label holding the same value keeps both working without doubling the
    series (status == code, always), and every query that sums or groups by code is unchanged.
    Callers keep the four-label call `labels(service, method, route, code)`.
    """

    def __init__(self) -> None:
        self.counter = Counter("http_requests_total", "HTTP requests served",
                               ["service", "method", "route", "code", "status"])

    def labels(self, service: str, method: str, route: str, code: str) -> object:
        return self.counter.labels(service, method, route, code, code)


class _BothObserved:
    """Observe one value into several histogram children at once."""

    def __init__(self, *children: object) -> None:
        self.children = children

    def observe(self, value: float) -> None:
        for child in self.children:
            child.observe(value)  # type: ignore[attr-defined]


class _RequestDurations:
    """http_request_duration_seconds (ours) plus request_duration_seconds (the study's name,
    same labels and buckets), fed by the one observation the request middleware makes."""

    def __init__(self) -> None:
        labels = ["service", "method", "route"]
        self.ours = Histogram("http_request_duration_seconds", "HTTP request latency", labels,
                              buckets=LATENCY_BUCKETS)
        self.study = Histogram("request_duration_seconds",
                               "HTTP request latency (the seed study's metric name)", labels,
                               buckets=LATENCY_BUCKETS)

    def labels(self, service: str, method: str, route: str) -> _BothObserved:
        return _BothObserved(self.ours.labels(service, method, route),
                             self.study.labels(service, method, route))


http_requests_total = _HttpRequests()
http_request_duration_seconds = _RequestDurations()
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
# Summed over gateway replicas: the concurrency the gateways admit together.
gateway_concurrency_limit = Gauge(
    "gateway_concurrency_limit", "The gateway's adaptive concurrency limit (requests in flight)",
    multiprocess_mode="livesum",
)
event_loop_lag_seconds = Gauge(
    "event_loop_lag_seconds", "Mean delay of the service's event loop over its last 0.25 s "
    "(its own queueing: ~0 when idle or waiting on a dependency, high when CPU-bound)",
    ["service"], multiprocess_mode="livemax",
)
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
# Retries that went out: a retry refused by an open breaker, a full bulkhead or a spent
# deadline is in retry_attempts_total but was never sent (retry amplification uses this).
retry_requests_total = Counter(
    "retry_requests_total", "Retries sent to the downstream", ["downstream"]
)
retry_backoff_seconds_total = Counter(
    "retry_backoff_seconds_total", "Seconds waited before retries (backoff)", ["downstream"]
)
# SHOP_OUTBOX=0: orders notifies notifications in the request, once, without an outbox.
notifications_direct_total = Counter(
    "notifications_direct_total", "Order events sent directly (no outbox)", ["outcome"]
)
chaos_injected_total = Counter(
    "chaos_injected_total", "Faults applied to requests", ["service", "fault"]
)
payments_charges_total = Counter("payments_charges_total", "Charges recorded", ["outcome"])
notifications_received_total = Counter("notifications_received_total", "Events accepted")
notifications_duplicates_total = Counter(
    "notifications_duplicates_total", "Events received again and ignored"
)

# -- label values created at start-up ----------------------------------------------------------
# Kept here, next to the metrics, rather than imported from the services: the services import
# this module. The detection e2e test checks them against what the running stack uses.

# Final order statuses (orders.py `_process`); "pending" is a row state, never counted.
ORDER_STATUSES = ("completed", "payment_failed", "inventory_failed")
# Who calls whom (gateway.py / orders.py Downstream objects).
DOWNSTREAMS_OF: dict[str, tuple[str, ...]] = {
    "gateway": ("orders",),
    "orders": ("payments", "inventory", "notifications"),
}
# downstream.py's reasons: refused locally, transport failures, and `http_<code>` for 429/5xx.
DOWNSTREAM_ERROR_REASONS = ("breaker_open", "bulkhead_full", "timeout", "connect",
                            "http_429", "http_500", "http_502", "http_503", "http_504")
# The route the rules and playbooks read (gateway POST /orders; orders serves it too), with the
# codes an order answers: 201 completed, 202 recorded but failed, 429 shed, 5xx failed.
ORDER_ROUTE_CODES = ("201", "202", "429", "500", "503", "504")
CHAOS_FAULTS_OF: dict[str, tuple[str, ...]] = {
    "payments": ("error_rate", "latency_ms"),
    "inventory": ("error_rate", "lock_contention_ms"),
}
CHARGE_OUTCOMES = ("charged", "replayed", "injected_error")


def init_labels(service: str) -> None:
    """Create every label value `service` can emit and the rules read, at 0.

    `.labels()` only creates a child: in multiprocess mode it adds the key to this process's
    file at 0 (never overwriting), so replicas still sum correctly and a restart adds a zero
    series instead of leaving a gap. Unlabelled metrics exist from import already.
    """
    if service in ("gateway", "orders"):
        for code in ORDER_ROUTE_CODES:
            http_requests_total.labels(service, "POST", "/orders", code)
    if service == "orders":
        for status in ORDER_STATUSES:
            orders_total.labels(status)
        for outcome in ("sent", "failed"):
            notifications_direct_total.labels(outcome)
    for downstream in DOWNSTREAMS_OF.get(service, ()):
        downstream_requests_total.labels(downstream)
        for reason in DOWNSTREAM_ERROR_REASONS:
            downstream_errors_total.labels(downstream, reason)
        bulkhead_rejections_total.labels(downstream)
        retry_attempts_total.labels(downstream)
        retry_budget_exhausted_total.labels(downstream)
        retry_backoff_seconds_total.labels(downstream)
        retry_requests_total.labels(downstream)
        breaker_state.labels(downstream)  # 0 = closed; Downstream sets it too
    for fault in CHAOS_FAULTS_OF.get(service, ()):
        chaos_injected_total.labels(service, fault)
    if service == "payments":
        for outcome in CHARGE_OUTCOMES:
            payments_charges_total.labels(outcome)


def render() -> tuple[bytes, str]:
    """The exposition text for /metrics, summed across replicas in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST

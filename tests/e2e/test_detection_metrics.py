"""Every label value a rule or playbook reads exists at 0 from start-up, on the real stack, and
the study's metric names (`status` label, `request_duration_seconds`, `idempotency_hits_total`)
are served next to ours."""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support import wait_for

DOWNSTREAMS_OF = {"gateway": ("orders",), "orders": ("payments", "inventory", "notifications")}
REASONS = ("breaker_open", "bulkhead_full", "timeout", "connect", "http_503")


def series(stack: Any, service: str) -> dict[str, list[dict[str, str]]]:
    text = httpx.get(f"{stack.url(service)}/metrics", timeout=10).text
    found: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append(dict(sample.labels))
    return found


def has(found: dict[str, list[dict[str, str]]], name: str, **labels: str) -> bool:
    return any(all(s.get(k) == v for k, v in labels.items()) for s in found.get(name, []))


def test_order_series_exist_for_every_status(stack: Any) -> None:
    found = series(stack, "orders")
    for status in ("completed", "payment_failed", "inventory_failed"):
        assert has(found, "orders_total", status=status), status


def test_downstream_series_exist_per_caller(stack: Any) -> None:
    for service, downstreams in DOWNSTREAMS_OF.items():
        found = series(stack, service)
        for downstream in downstreams:
            for reason in REASONS:
                assert has(found, "downstream_errors_total", to_service=downstream,
                           reason=reason), (service, downstream, reason)
            for name in ("bulkhead_rejections_total", "retry_attempts_total", "breaker_state"):
                assert has(found, name, downstream=downstream), (service, name, downstream)
        for code in ("201", "202", "503"):
            assert has(found, "http_requests_total", service=service, method="POST",
                       route="/orders", code=code)


def test_initialised_downstreams_match_the_breakers(stack: Any) -> None:
    # The init table lives in shop.metrics; the breakers are what the services really call.
    breakers = httpx.get(f"{stack.url('gateway')}/status/breakers", timeout=10).json()
    assert set(breakers["breakers"]) == {d for ds in DOWNSTREAMS_OF.values() for d in ds}


def test_study_metric_names_are_served(stack: Any) -> None:
    httpx.get(f"{stack.url('gateway')}/health", timeout=10)
    found = series(stack, "gateway")
    assert found["http_requests_total"]
    assert all(s["status"] == s["code"] for s in found["http_requests_total"])
    assert has(found, "request_duration_seconds_count", service="gateway", route="/health")
    assert has(found, "http_request_duration_seconds_count", service="gateway", route="/health")
    assert "idempotency_hits_total" in series(stack, "orders") or \
        "idempotency_hits_total" in found


def test_study_queries_answer_in_prometheus(stack: Any) -> None:
    from chaosctl.clients.prometheus import Prometheus

    prom = Prometheus(stack.settings.prometheus_url)
    # The study's collect_metrics.py queries, verbatim in shape.
    for expr in ('rate(http_requests_total{service="orders",status=~"2.."}[1m])',
                 'rate(request_duration_seconds_bucket{service="gateway"}[1m])',
                 "rate(idempotency_hits_total[1m])"):
        wait_for(lambda e=expr: prom.query(e), timeout=30, interval=0.5, what=expr)

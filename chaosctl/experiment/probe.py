"""What the experiment reads from the stack itself: counters from the services' /metrics,
the breakers once a second, and orders per idempotency key from the orders database."""

from __future__ import annotations

import httpx

from chaosctl.clients.http import http_client
from chaosctl.config import Settings
from chaosctl.domain import sqlalchemy_url
from chaosctl.experiment.measure import Counters


def _families(text: str):  # noqa: ANN202 - prometheus_client's own iterator type
    from prometheus_client.parser import text_string_to_metric_families

    return text_string_to_metric_families(text)


def parse_counters(orders_text: str | None, gateway_text: str | None) -> Counters:
    """Counters from the two /metrics pages (None when it did not answer; without orders'
    page the counters are marked incomplete)."""
    counters = Counters(complete=orders_text is not None)
    orders_text, gateway_text = orders_text or "", gateway_text or ""
    for family in _families(orders_text):
        for s in family.samples:
            if s.name == "orders_total":
                counters.orders += s.value
            elif s.name == "downstream_requests_total" and s.labels.get("to_service") == \
                    "payments":
                counters.payment_calls += s.value
            elif s.name == "retry_requests_total" and s.labels.get("downstream") == "payments":
                counters.payment_retries += s.value
            elif s.name == "bulkhead_rejections_total":
                counters.bulkhead_rejections += s.value
            elif (s.name == "downstream_request_duration_seconds_bucket"
                  and s.labels.get("to_service") == "payments"):
                bound = float(s.labels["le"])
                counters.payment_buckets[bound] = counters.payment_buckets.get(bound, 0.0) \
                    + s.value
    for family in _families(gateway_text):
        for s in family.samples:
            if s.name == "load_shed_total":
                counters.load_shed += s.value
    return counters


READ_ATTEMPTS = 2  # an overloaded service may miss one 5 s read; a second try usually lands


def read_counters(settings: Settings) -> Counters:
    pages: list[str | None] = []
    with http_client(timeout=5.0) as client:
        for service in ("orders", "gateway"):
            page = None
            for _ in range(READ_ATTEMPTS):
                try:
                    response = client.get(settings.url(service) + "/metrics")
                except httpx.HTTPError:
                    continue
                if response.status_code == 200:
                    page = response.text
                    break
            pages.append(page)
    return parse_counters(*pages)


def orders_per_key(settings: Settings, prefix: str) -> tuple[int, int]:
    """(orders, distinct idempotency keys) among orders whose key starts with `prefix`."""
    from sqlalchemy import create_engine, text

    if settings.database_url:
        engine = create_engine(sqlalchemy_url(settings.database_url))
    else:
        engine = create_engine(f"sqlite:///{settings.home / 'data' / 'orders.db'}")
    try:
        with engine.connect() as conn:
            row = conn.execute(text(
                "SELECT COUNT(*), COUNT(DISTINCT idempotency_key) FROM orders "
                "WHERE idempotency_key LIKE :p"), {"p": prefix + "%"}).one()
    finally:
        engine.dispose()
    return int(row[0] or 0), int(row[1] or 0)


def reset_breakers(settings: Settings) -> None:
    """Close every breaker between cells (the admin endpoints), so one cell's open breaker
    does not fail the next one's first seconds. Best effort: a failure shows in the next
    cell's figures."""
    token = settings.admin_token()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with http_client(timeout=3.0) as client:
        for downstream in ("orders", "payments", "inventory"):  # the gateway forwards
            try:
                client.post(f"{settings.url('gateway')}/status/breakers/{downstream}/reset",
                            headers=headers)
            except httpx.HTTPError:
                pass

"""Counters read straight from the services' /metrics: payments calls per order (retry
amplification) and load shed, before and after a run."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from chaosctl.clients.http import http_client
from chaosctl.config import Settings


@dataclass
class Counters:
    orders: float = 0.0
    payment_calls: float = 0.0
    load_shed: float = 0.0


def _sum(text: str, name: str, label: str | None = None) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and (label is None or label in sample.labels.values()):
                total += sample.value
    return total


def read_counters(settings: Settings) -> Counters:
    """Cumulative counters now (services that do not answer count as 0)."""
    counters = Counters()
    with http_client(timeout=2.0) as client:
        try:
            text = client.get(settings.url("orders") + "/metrics").text
            counters.orders = _sum(text, "orders_total")
            counters.payment_calls = _sum(text, "downstream_requests_total", "payments")
        except httpx.HTTPError:
            pass
        try:
            text = client.get(settings.url("gateway") + "/metrics").text
            counters.load_shed = _sum(text, "load_shed_total")
        except httpx.HTTPError:
            pass
    return counters

"""Counters read straight from the services' /metrics: payments calls per order (retry
amplification) and load shed, before and after a run."""

from __future__ import annotations

import threading
from collections.abc import Callable
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


class BreakerSampler(threading.Thread):
    """Once a second, how many breakers are not closed (gateway -> orders, orders ->
    payments/inventory); -1 when /status/breakers did not answer. Keyed by whole seconds of
    `clock`: the game day shades its chart with it, the experiment computes breaker-open %."""

    def __init__(self, settings: Settings, clock: Callable[[], float],
                 name: str = "breaker-sampler") -> None:
        super().__init__(name=name, daemon=True)
        self.url = settings.url("gateway") + "/status/breakers"
        self.clock = clock
        self.by_second: dict[int, int] = {}
        self._stop_event = threading.Event()

    def run(self) -> None:
        with http_client(timeout=1.0) as client:
            while not self._stop_event.is_set():
                try:
                    breakers = client.get(self.url).json()["breakers"]
                    value = sum(1 for b in breakers.values() if b.get("state_code", 0) != 0)
                except (httpx.HTTPError, ValueError, KeyError, AttributeError):
                    value = -1
                self.by_second[int(self.clock())] = value
                self._stop_event.wait(1.0)

    def stop(self, timeout: float = 3.0) -> None:
        self._stop_event.set()
        self.join(timeout=timeout)

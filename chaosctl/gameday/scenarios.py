"""The game-day scenarios: which fault each injects, which playbook should fire, and the
objectives it is scored against."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chaosctl.errors import InvalidInputError


@dataclass(frozen=True)
class Objectives:
    max_mttd_s: float = 15.0
    # The seed study's MTTR with circuit breakers was 35 s: a game day must beat it.
    max_mttr_s: float = 35.0
    min_success_after: float = 0.95
    max_retry_amplification: float | None = None  # payments calls per order, when scored


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    fault: str  # a `chaosctl inject` fault
    options: dict[str, Any]
    playbook: str  # the playbook expected to fire
    objectives: Objectives = field(default_factory=Objectives)


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("payment-errors", "payments fails half of its charges",
             "payment-errors", {"rate": 0.5}, "payment-degradation"),
    Scenario("payment-slow", "payments answers after 3 s (beyond the 2 s hop timeout)",
             "payment-latency", {"ms": 3000}, "payment-degradation"),
    Scenario("inventory-lock", "inventory holds its stock lock 2 s per reservation",
             "inventory-lock", {"ms": 2000}, "inventory-lock-contention"),
    Scenario("gateway-overload", "an open-loop burst far above what the stack serves",
             "overload", {"rps": 600, "for_": "60s"}, "gateway-overload"),
    Scenario("notifications-down", "notifications is killed and stays down",
             "notifications-down", {"for_": "0"}, "outbox-backlog"),
    Scenario("service-crash", "payments is killed (SIGKILL) and stays down",
             "service-down", {"service": "payments", "for_": "0"}, "service-down"),
    # The retry budget (20 % of calls) is what keeps this from becoming a storm: the
    # retry-storm playbook (retries > 2x requests) must NOT fire; the payments degradation
    # behind it must, and amplification must stay near the study's 1.1x.
    Scenario("retry-storm", "payment errors plus clients that re-POST every failure at once; "
             "the retry budget must keep amplification low",
             "retry-storm", {"rate": 0.5, "rps": 20, "for_": "60s"}, "payment-degradation",
             Objectives(max_retry_amplification=1.3)),
)}


def get(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise InvalidInputError(
            f"unknown scenario {name!r}; valid: {', '.join(SCENARIOS)}") from None

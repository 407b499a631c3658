"""The study's five failure scenarios, each one of chaosctl's own faults (chaos.injector)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chaosctl.errors import InvalidInputError

BASELINE = "baseline"
# retry_storm: the catalogue's retry-storm default error rate; at the paper's 20 % our
# stack's own retries leave almost nothing for a client to retry (see README).
STORM_RATE = 0.5
CLIENT_RETRIES = 3  # the aggressive client: 3 immediate re-sends with the same key
SPIKE = 10  # gateway_overload: total traffic is SPIKE x --rps while the fault lasts


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    fault: str  # a fault of chaosctl.domain.FAULTS
    # (--rps, fault seconds) -> keyword options of chaos.injector.inject
    options: Callable[[float, float], dict[str, Any]]
    client_retries: int = 0


def _worker_ttl(seconds: float) -> int:
    return int(seconds) + 60


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("payment_errors", "20 % of payment calls answer 503", "payment-errors",
             lambda rps, s: {"rate": 0.2, "ttl": _worker_ttl(s)}),
    Scenario("payment_slow", "every payment takes 3 s", "payment-latency",
             lambda rps, s: {"ms": 3000, "ttl": _worker_ttl(s)}),
    Scenario("inventory_lock", "2 s lock contention on every reservation", "inventory-lock",
             lambda rps, s: {"ms": 2000, "ttl": _worker_ttl(s)}),
    Scenario("retry_storm", f"{STORM_RATE:.0%} payment errors, a storm of retrying clients "
                            f"(chaosctl's retry-storm at --rps, 3 retries) and the measured "
                            f"client re-sending failures {CLIENT_RETRIES}x with the same key",
             "retry-storm",
             lambda rps, s: {"rate": STORM_RATE, "rps": max(1.0, rps), "retries": 3,
                             "for_": max(1, int(s)), "ttl": _worker_ttl(s)},
             client_retries=CLIENT_RETRIES),
    Scenario("gateway_overload", f"a {SPIKE}x spike: chaosctl's overload adds "
                                 f"{SPIKE - 1}x --rps of orders", "overload",
             lambda rps, s: {"rps": max(1.0, (SPIKE - 1) * rps), "for_": max(1, int(s)),
                             "ttl": _worker_ttl(s)}),
)}


def parse_scenarios(text: str) -> list[str]:
    names = [part.strip().lower().replace("-", "_") for part in text.split(",") if part.strip()]
    bad = [n for n in names if n not in SCENARIOS]
    if bad or not names:
        raise InvalidInputError(f"--scenarios {text!r}: unknown scenario "
                                f"{', '.join(bad) or '(none given)'}; valid: "
                                f"{','.join(SCENARIOS)}")
    return list(dict.fromkeys(names))

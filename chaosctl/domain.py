"""The domain at the bottom of chaosctl: the stack's services, the fault table, the chaos
keys, durations. Every other package imports these from here and nothing here imports
anything of chaosctl but `errors`, so the layers above depend only downward:

    errors, domain -> clients -> runtime -> chaos -> playbook -> gameday -> cli
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal, get_args

from chaosctl.errors import InvalidInputError

ServiceName = Literal["gateway", "orders", "payments", "inventory", "notifications"]
# The five services in the runbook's order (gateway first: it is the entry point).
SERVICES: tuple[ServiceName, ...] = get_args(ServiceName)
# The infrastructure the stack also runs (not services: no /health, no chaos).
INFRA: tuple[str, ...] = ("redis", "prometheus")

DEFAULT_TTL_S = 600  # 10 minutes: every fault ends by itself
MAX_TTL_S = 86_400  # the services refuse longer TTLs on /chaos/config
MAX_MS = 60_000  # the services' upper bound for latency / lock hold
MAX_RPS = 2_000
MAX_FOR_S = 3_600.0
# Hard cap on requests one burst may send, whatever rps x duration says.
MAX_BURST_REQUESTS = 500_000
MAX_RETRIES = 20


@dataclass(frozen=True)
class RedisFault:
    """A fault that is one chaos key, set through the service's /chaos/config."""

    service: ServiceName  # payments | inventory
    field: str  # the /chaos/config field, also the key suffix
    kind: Literal["rate", "ms"]  # "rate" (0 < r <= 1) or "ms" (1..MAX_MS)

    @property
    def key(self) -> str:
        return chaos_key(self.service, self.field)


def chaos_key(service: str, field: str) -> str:
    """The Redis key a service reads a chaos field from (the runbook's `chaos:payments:...`)."""
    return f"chaos:{service}:{field}"


REDIS_FAULTS: dict[str, RedisFault] = {
    "payment-errors": RedisFault("payments", "error_rate", "rate"),
    "payment-latency": RedisFault("payments", "latency_ms", "ms"),
    "inventory-lock": RedisFault("inventory", "lock_contention_ms", "ms"),
    "inventory-errors": RedisFault("inventory", "error_rate", "rate"),
}
# The runbook's chaos keys, in the contract's order; everything else derives from this table.
CHAOS_KEYS: tuple[str, ...] = tuple(spec.key for spec in REDIS_FAULTS.values())
# service -> its /chaos/config fault fields
SERVICE_FAULTS: dict[str, tuple[str, ...]] = {
    service: tuple(s.field for s in REDIS_FAULTS.values() if s.service == service)
    for service in dict.fromkeys(s.service for s in REDIS_FAULTS.values())
}
PROCESS_FAULTS: tuple[str, ...] = ("service-down", "service-hang", "notifications-down")
WORKER_FAULTS: tuple[str, ...] = ("overload", "retry-storm")
FAULTS: tuple[str, ...] = (*REDIS_FAULTS, *PROCESS_FAULTS, *WORKER_FAULTS)

# One line per fault for help texts and error messages.
DESCRIPTIONS: dict[str, str] = {
    "payment-errors": "payments answers 503 for a fraction --rate of charges",
    "payment-latency": "payments waits --ms before answering each charge",
    "inventory-lock": "inventory holds its stock lock --ms per reservation (reservations queue)",
    "inventory-errors": "inventory answers 503 for a fraction --rate of reservations",
    "service-down": "SIGKILL every replica of SERVICE; started again after --for (0: at --ttl)",
    "service-hang": "SIGSTOP every replica of SERVICE; SIGCONT after --for (0: at --ttl)",
    "notifications-down": "service-down for notifications (the outbox incident)",
    "overload": "open-loop burst of --rps orders/s against the gateway for --for",
    "retry-storm": "payment errors plus clients re-POSTing failed orders at once (--retries)",
}

_DURATION = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str | float | int, what: str = "duration") -> float:
    """Seconds from "30s", "2m", "500ms", "1h" or plain seconds ("30", 30). Negative refused.

    The one duration parser of chaosctl (flags, playbooks, config): InvalidInputError naming
    `what` on a bad value; pydantic models wrap it into their ValueError (playbook/model.py).
    """
    if isinstance(text, bool):
        raise InvalidInputError(f"{what} {text!r} is not a duration",
                                hint="use e.g. 30s, 2m, 500ms, 1h or plain seconds")
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        match = _DURATION.match(str(text))
        if not match:
            raise InvalidInputError(
                f"{what} {text!r} is not a duration",
                hint="use e.g. 30s, 2m, 500ms, 1h or plain seconds",
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds < 0:
        raise InvalidInputError(f"{what} {text!r} is negative", hint="durations are >= 0")
    return seconds


def sqlalchemy_url(url: str) -> str:
    """A PostgreSQL URL as SQLAlchemy's psycopg 3 driver wants it; any other URL unchanged."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def is_loopback(host: str) -> bool:
    """localhost or a loopback IP; a name that merely starts with "127." is not."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

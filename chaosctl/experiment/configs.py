"""The study's six configurations as switch sets of the bundled stack (stack/shop/settings.py).

A none; B retries (max 3, no jitter, immediate); C retries + per-hop timeouts; D C + circuit
breakers; E D + bulkheads + load shedding; F E + idempotency keys + outbox. Each is applied by
restarting the five services with these SHOP_* variables; an empty set is the stack's normal
configuration, which F is (see the notes for where our knobs differ from the paper's)."""

from __future__ import annotations

from dataclasses import dataclass, field

from chaosctl.errors import InvalidInputError

# "No timeout": longer than any client waits (the experiment's client gives up at 30 s).
NO_TIMEOUT_S = "120"
_OFF = "0"
_ON = "1"
_NO_TIMEOUTS = {
    "SHOP_TIMEOUT_ORDERS_S": NO_TIMEOUT_S, "SHOP_TIMEOUT_PAYMENTS_S": NO_TIMEOUT_S,
    "SHOP_TIMEOUT_INVENTORY_S": NO_TIMEOUT_S, "SHOP_TIMEOUT_NOTIFICATIONS_S": NO_TIMEOUT_S,
    "SHOP_REQUEST_BUDGET_S": NO_TIMEOUT_S,
}
# The paper's naive retries: 3 retries (4 attempts), immediate (no backoff, no jitter), no
# retry budget. B-E keep them; F is the stack's own policy (jittered backoff, 30 % budget).
_PLAIN_RETRIES = {"SHOP_RETRIES": _ON, "SHOP_RETRY_MAX_ATTEMPTS": "4",
                  "SHOP_RETRY_BACKOFF_S": "0", "SHOP_RETRY_JITTER": _OFF,
                  "SHOP_RETRY_BUDGET_RATIO": "1000", "SHOP_RETRY_BUDGET_FLOOR": "10000"}
# A-E have no outbox: orders notifies notifications in the request, once, best effort.
_NO_OUTBOX = {"SHOP_OUTBOX": _OFF}


@dataclass(frozen=True)
class Config:
    name: str
    label: str
    env: dict[str, str] = field(default_factory=dict)
    breakers: bool = False  # breaker-open time means something only with breakers on
    note: str = ""


CONFIGS: dict[str, Config] = {c.name: c for c in (
    Config("A", "none", {"SHOP_RETRIES": _OFF, "SHOP_BREAKERS": _OFF, "SHOP_BULKHEADS": _OFF,
                         "SHOP_LOAD_SHEDDING": _OFF, "SHOP_IDEMPOTENCY": _OFF, **_NO_OUTBOX,
                         **_NO_TIMEOUTS},
           note=f"no retries, breakers, bulkheads, shedding, idempotency or outbox; timeouts "
                f"{NO_TIMEOUT_S} s (none the client would notice)"),
    Config("B", "retries", {"SHOP_BREAKERS": _OFF, "SHOP_BULKHEADS": _OFF,
                            "SHOP_LOAD_SHEDDING": _OFF, "SHOP_IDEMPOTENCY": _OFF,
                            **_PLAIN_RETRIES, **_NO_OUTBOX, **_NO_TIMEOUTS},
           note="4 attempts, immediate (no backoff, no jitter), no retry budget"),
    Config("C", "retries + timeouts", {"SHOP_BREAKERS": _OFF, "SHOP_BULKHEADS": _OFF,
                                       "SHOP_LOAD_SHEDDING": _OFF, "SHOP_IDEMPOTENCY": _OFF,
                                       **_PLAIN_RETRIES, **_NO_OUTBOX},
           note="B plus the stack's per-hop timeouts (payments 2 s, inventory 2.5 s, "
                "orders 8 s, request budget 10 s)"),
    Config("D", "C + breakers", {"SHOP_BULKHEADS": _OFF, "SHOP_LOAD_SHEDDING": _OFF,
                                 "SHOP_IDEMPOTENCY": _OFF, **_PLAIN_RETRIES, **_NO_OUTBOX},
           breakers=True, note="C plus circuit breakers (50 % failures in 10 s, open 30 s)"),
    Config("E", "D + bulkheads + shedding", {"SHOP_IDEMPOTENCY": _OFF, **_PLAIN_RETRIES,
                                             **_NO_OUTBOX},
           breakers=True, note="D plus bulkheads (20 per downstream) and load shedding at "
                               "the gateway"),
    Config("F", "E + idempotency + outbox", {}, breakers=True,
           note="the stack's normal configuration: E plus idempotency keys and the "
                "transactional outbox, with its own retry policy (jittered backoff from "
                "50 ms, retry budget 30 % of calls) instead of B's immediate retries"),
)}


def parse_configs(text: str) -> list[str]:
    """"A,C,F" (any case, spaces allowed) -> ["A", "C", "F"]; InvalidInputError otherwise."""
    names = [part.strip().upper() for part in text.split(",") if part.strip()]
    bad = [n for n in names if n not in CONFIGS]
    if bad or not names:
        raise InvalidInputError(f"--configs {text!r}: unknown configuration "
                                f"{', '.join(bad) or '(none given)'}; valid: "
                                f"{','.join(CONFIGS)} (e.g. --configs A,D,F)")
    return list(dict.fromkeys(names))

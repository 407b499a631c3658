"""Validating a fault request: every parameter of a fault `chaosctl inject` knows, in range.

The fault table itself (names, keys, limits) is domain data in chaosctl.domain.

Validation happens here, before anything touches the stack, so a bad value (rate 1.5, a
negative duration, an unknown service) is refused with exit 2 and nothing is set. The
injector only ever receives a `FaultRequest` that passed `validate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chaosctl.domain import (
    DEFAULT_TTL_S,
    FAULTS,
    MAX_BURST_REQUESTS,
    MAX_FOR_S,
    MAX_MS,
    MAX_RETRIES,
    MAX_RPS,
    MAX_TTL_S,
    PROCESS_FAULTS,
    REDIS_FAULTS,
    SERVICES,
    RedisFault,
    parse_duration,
)
from chaosctl.errors import InvalidInputError, UnknownServiceError


@dataclass
class FaultRequest:
    """A validated fault: what to inject, with every parameter in range."""

    fault: str
    ttl_s: int
    service: str | None = None  # process faults
    value: float | None = None  # redis faults: the rate or the ms
    for_s: float = 0.0  # process / worker faults: how long before it ends by itself
    params: dict[str, Any] = field(default_factory=dict)  # overload / retry-storm extras

    @property
    def redis_fault(self) -> RedisFault | None:
        return REDIS_FAULTS.get(self.fault)

    def summary(self) -> dict[str, Any]:
        """The audit / JSON view of the request."""
        return {"fault": self.fault, "service": self.service, "value": self.value,
                "for_s": self.for_s, "ttl_s": self.ttl_s, **self.params}


def check_fault(name: str) -> str:
    if name not in FAULTS:
        raise InvalidInputError(f"unknown fault {name!r}; valid faults: {', '.join(FAULTS)}")
    return name


def check_service(name: str | None) -> str:
    if name not in SERVICES:
        raise UnknownServiceError(
            f"unknown service {name!r}; valid services: {', '.join(SERVICES)}")
    return name


def _ttl(raw: str | float | int | None) -> int:
    seconds = parse_duration(DEFAULT_TTL_S if raw is None else raw, "--ttl")
    if seconds == 0:
        raise InvalidInputError(
            "--ttl 0 is refused: every fault must end by itself",
            hint=f"give a TTL between 1s and {MAX_TTL_S}s (default 10m)")
    if seconds < 1 or seconds > MAX_TTL_S or seconds != int(seconds):
        raise InvalidInputError(
            f"--ttl {raw} is out of range; valid: whole seconds from 1s to {MAX_TTL_S}s (24h)")
    return int(seconds)


def _rate(value: float | None, fault: str) -> float:
    if value is None:
        raise InvalidInputError(f"{fault} needs --rate (a fraction, 0 < rate <= 1)")
    if not 0 < value <= 1:
        raise InvalidInputError(
            f"--rate {value:g} is out of range for {fault}; valid: 0 < rate <= 1 (e.g. 0.2)")
    return float(value)


def _ms(value: float | None, fault: str) -> float:
    if value is None:
        raise InvalidInputError(f"{fault} needs --ms (milliseconds, 1..{MAX_MS})")
    if not 1 <= value <= MAX_MS or value != int(value):
        raise InvalidInputError(
            f"--ms {value:g} is out of range for {fault}; valid: whole milliseconds 1..{MAX_MS}")
    return float(value)


def _for(raw: str | float | int | None, default: float, ttl_s: int, allow_zero: bool) -> float:
    seconds = parse_duration(default if raw is None else raw, "--for")
    if seconds == 0 and not allow_zero:
        raise InvalidInputError("--for 0 is refused for this fault; give how long it runs",
                                hint="e.g. --for 60s")
    if seconds > MAX_FOR_S:
        raise InvalidInputError(f"--for {raw} is out of range; valid: up to {MAX_FOR_S:g}s (1h)")
    if seconds > ttl_s:
        raise InvalidInputError(
            f"--for {raw} is longer than --ttl {ttl_s}s; the TTL bounds every fault",
            hint="raise --ttl or shorten --for")
    return seconds


def validate(fault: str, *, ttl: str | float | int | None = None, rate: float | None = None,
             ms: float | None = None, service: str | None = None,
             for_: str | float | int | None = None, rps: float | None = None,
             retries: int | None = None) -> FaultRequest:
    """Check every parameter of `fault`; InvalidInputError (exit 2) naming the valid range."""
    check_fault(fault)
    ttl_s = _ttl(ttl)
    spec = REDIS_FAULTS.get(fault)
    if spec is not None:
        value = _rate(rate, fault) if spec.kind == "rate" else _ms(ms, fault)
        return FaultRequest(fault, ttl_s, service=spec.service, value=value)
    if fault in PROCESS_FAULTS:
        target = "notifications" if fault == "notifications-down" else check_service(service)
        default = 20.0 if fault == "service-hang" else 30.0
        # --for 0: stay down until remediated or cleared; the TTL still brings it back.
        for_s = _for(for_, default, ttl_s, allow_zero=True)
        return FaultRequest(fault, ttl_s, service=target, for_s=for_s)
    # overload / retry-storm
    rps_v = float(rps if rps is not None else (200 if fault == "overload" else 20))
    if not 1 <= rps_v <= MAX_RPS:
        raise InvalidInputError(f"--rps {rps_v:g} is out of range; valid: 1..{MAX_RPS}")
    for_s = _for(for_, 60.0, ttl_s, allow_zero=False)
    params: dict[str, Any] = {
        "rps": rps_v,
        "max_requests": int(min(MAX_BURST_REQUESTS, max(1, rps_v * for_s))),
    }
    value = None
    if fault == "retry-storm":
        value = _rate(0.5 if rate is None else rate, fault)
        n = 5 if retries is None else retries
        if not 1 <= n <= MAX_RETRIES:
            raise InvalidInputError(f"--retries {n} is out of range; valid: 1..{MAX_RETRIES}")
        params["retries"] = n
        # Every arrival may become 1 + retries requests; the cap bounds all of them.
        params["max_requests"] = int(min(MAX_BURST_REQUESTS, params["max_requests"] * (1 + n)))
    return FaultRequest(fault, ttl_s, service="gateway", value=value, for_s=for_s, params=params)

"""`chaosctl health --json`: the whole stack in one object (also `diagnose`'s "direct")."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from chaosctl.results import Keys, Result

# What the service said (ok, degraded, down), or that it could not say: no answer within the
# timeout or refused (unreachable), or an answer that is not a /health body (error).
ServiceStatus = Literal["ok", "degraded", "down", "unreachable", "error"]
BreakerState = Literal["closed", "open", "half_open"]
TargetHealth = Literal["up", "down", "unknown"]  # Prometheus' own words


class ServiceHealth(Result):
    """One service's answer to `GET /health`."""

    status: ServiceStatus
    url: str
    latency_ms: float | None = None
    detail: str = ""  # names only what is wrong, e.g. breakers.payments=open


class Breaker(Result):
    state: BreakerState
    failure_rate: float | None = None
    calls_in_window: int | None = None
    owner: str | None = None
    next_probe_at: float | None = None


class BreakersHealth(Result):
    status: Literal["ok", "unreachable", "error"]  # ok: the gateway answered
    url: str
    detail: str = ""
    states: Annotated[dict[str, Breaker], Keys("DOWNSTREAM")] = Field(default_factory=dict)


class RedisHealth(Result):
    status: Literal["ok", "unreachable"]
    url: str
    latency_ms: float | None = None
    detail: str = ""


class Target(Result):
    job: str
    instance: str
    health: TargetHealth
    last_error: str = ""


class PrometheusHealth(Result):
    status: Literal["ok", "not_ready", "unreachable", "error"]  # ok: ready
    url: str
    targets_total: int = 0
    detail: str = ""
    targets_down: list[Target] = Field(default_factory=list)


class ChaosKey(Result):
    key: str
    value: str
    ttl_s: int | None = None  # None: the key has no TTL (a contract breach worth seeing)


class HealthReport(Result):
    """`healthy` is true exactly when `problems` is empty."""

    healthy: bool
    problems: list[str]
    services: Annotated[dict[str, ServiceHealth], Keys("NAME")]
    breakers: BreakersHealth
    redis: RedisHealth
    prometheus: PrometheusHealth
    chaos: list[ChaosKey]
    checked_at: float

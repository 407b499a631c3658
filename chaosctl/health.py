"""Stack health: the runbook's "Health Checks" section as one concurrent look.

Checks, all at once with short timeouts so a paused (SIGSTOPped) process shows up as
"unreachable" within one timeout instead of hanging the command:

- the five services' `GET /health`,
- the breakers from the gateway's `GET /status/breakers`,
- Redis (`PING`) and every chaos key still set in it, with its remaining TTL
  (the runbook's "may have been left enabled"),
- Prometheus: `/-/ready` and whether every active scrape target is up.

This module never prints; `chaosctl.cli.health` renders the report.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from pydantic import BaseModel, Field

from chaosctl.chaos.catalogue import CHAOS_KEYS
from chaosctl.config import SERVICES, Settings
from chaosctl.errors import ExitCode

DEFAULT_TIMEOUT_S = 2.0
SERVICE_STATUSES = ("ok", "degraded", "down")


class ServiceHealth(BaseModel):
    """One service's answer to `GET /health`."""

    # ok | degraded | down (what the service said) | unreachable | error (bad answer)
    status: str
    url: str
    latency_ms: float | None = None
    detail: str = ""


class Breaker(BaseModel):
    state: str  # closed | open | half_open
    failure_rate: float | None = None
    calls_in_window: int | None = None
    owner: str | None = None
    next_probe_at: float | None = None


class BreakersHealth(BaseModel):
    status: str  # ok (the gateway answered) | unreachable | error
    url: str
    detail: str = ""
    states: dict[str, Breaker] = Field(default_factory=dict)


class RedisHealth(BaseModel):
    status: str  # ok | unreachable
    url: str
    latency_ms: float | None = None
    detail: str = ""


class Target(BaseModel):
    job: str
    instance: str
    health: str  # what Prometheus says: up | down | unknown
    last_error: str = ""


class PrometheusHealth(BaseModel):
    status: str  # ok (ready) | not_ready | unreachable | error
    url: str
    targets_total: int = 0
    targets_down: list[Target] = Field(default_factory=list)
    detail: str = ""


class ChaosKey(BaseModel):
    key: str
    value: str
    ttl_s: int | None = None  # None: the key has no TTL (a contract breach worth seeing)


class HealthReport(BaseModel):
    """The whole picture; `model_dump(mode="json")` is the `health --json` shape."""

    healthy: bool
    problems: list[str]
    services: dict[str, ServiceHealth]
    breakers: BreakersHealth
    redis: RedisHealth
    prometheus: PrometheusHealth
    chaos: list[ChaosKey]
    checked_at: float

    @classmethod
    def build(
        cls,
        *,
        services: dict[str, ServiceHealth],
        breakers: BreakersHealth,
        redis: RedisHealth,
        prometheus: PrometheusHealth,
        chaos: list[ChaosKey],
        checked_at: float | None = None,
    ) -> HealthReport:
        problems = find_problems(services, breakers, redis, prometheus, chaos)
        return cls(
            healthy=not problems,
            problems=problems,
            services=services,
            breakers=breakers,
            redis=redis,
            prometheus=prometheus,
            chaos=chaos,
            checked_at=time.time() if checked_at is None else checked_at,
        )


def find_problems(
    services: dict[str, ServiceHealth],
    breakers: BreakersHealth,
    redis: RedisHealth,
    prometheus: PrometheusHealth,
    chaos: list[ChaosKey],
) -> list[str]:
    """Every reason the stack is not healthy, one short sentence each (empty when healthy)."""
    problems: list[str] = []
    for name, svc in services.items():
        if svc.status != "ok":
            problems.append(f"{name} is {svc.status}" + (f": {svc.detail}" if svc.detail else ""))
    if breakers.status != "ok":
        problems.append(f"breakers unknown: gateway /status/breakers {breakers.status}")
    for downstream, breaker in breakers.states.items():
        if breaker.state != "closed":
            owner = breaker.owner or "gateway"
            problems.append(f"breaker {owner}->{downstream} is {breaker.state}")
    if redis.status != "ok":
        problems.append(f"redis is {redis.status}" + (f": {redis.detail}" if redis.detail else ""))
    if prometheus.status != "ok":
        problems.append(
            f"prometheus is {prometheus.status}"
            + (f": {prometheus.detail}" if prometheus.detail else "")
        )
    for target in prometheus.targets_down:
        problems.append(f"prometheus target {target.job} ({target.instance}) is {target.health}")
    for key in chaos:
        ttl = f"{key.ttl_s}s left" if key.ttl_s is not None else "no TTL"
        problems.append(f"chaos still enabled: {key.key}={key.value} ({ttl})")
    return problems


def exit_code(report: HealthReport) -> ExitCode:
    return ExitCode.OK if report.healthy else ExitCode.UNHEALTHY


# -- parsing answers (pure; unit-tested without servers) -----------------------------------


# Dependency values that mean "fine" in the services' /health answers.
_BENIGN = {"ok", "closed", "up"}


def _flatten(prefix: str, value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        out: list[tuple[str, Any]] = []
        for k, v in value.items():
            out.extend(_flatten(f"{prefix}.{k}" if prefix else str(k), v))
        return out
    return [(prefix, value)]


def dependency_detail(deps: Any) -> str:
    """One line naming only what is wrong in a `dependencies` object.

    Services report mixed values (statuses, breaker states, counters, active chaos); counters
    are noise here, while a non-benign status string or any active chaos fault is the point.
    """
    if not isinstance(deps, dict):
        return ""
    bad = [
        f"{path}={value}"
        for path, value in _flatten("", deps)
        if (isinstance(value, str) and value not in _BENIGN)
        or (path.split(".")[0] == "chaos" and value is not None)
    ]
    return ", ".join(sorted(bad))


def parse_service_health(url: str, http_status: int, body: Any, latency_ms: float) -> ServiceHealth:
    """Turn a `/health` answer into a ServiceHealth; a malformed answer is an "error"."""
    if not isinstance(body, dict) or body.get("status") not in SERVICE_STATUSES:
        shown = repr(body)[:80]
        return ServiceHealth(
            status="error",
            url=url,
            latency_ms=latency_ms,
            detail=f"HTTP {http_status}, unexpected body {shown}",
        )
    detail = dependency_detail(body.get("dependencies"))
    if http_status >= 400 and not detail:
        detail = f"HTTP {http_status}"
    return ServiceHealth(status=body["status"], url=url, latency_ms=latency_ms, detail=detail)


def parse_breakers(url: str, body: Any) -> BreakersHealth:
    states = body.get("breakers") if isinstance(body, dict) else None
    if not isinstance(states, dict):
        return BreakersHealth(status="error", url=url, detail=f"unexpected body {repr(body)[:80]}")
    parsed: dict[str, Breaker] = {}
    for downstream, raw in sorted(states.items()):
        raw = raw if isinstance(raw, dict) else {}
        parsed[downstream] = Breaker(
            state=str(raw.get("state", "unknown")),
            failure_rate=raw.get("failure_rate"),
            calls_in_window=raw.get("calls_in_window"),
            owner=raw.get("owner"),
            next_probe_at=raw.get("next_probe_at"),
        )
    return BreakersHealth(status="ok", url=url, states=parsed)


def parse_targets(url: str, body: Any) -> PrometheusHealth:
    """Prometheus `/api/v1/targets` -> which active targets are not up."""
    try:
        active = body["data"]["activeTargets"]
    except (KeyError, TypeError):
        return PrometheusHealth(status="error", url=url, detail="unexpected /api/v1/targets body")
    down = [
        Target(
            job=str(t.get("labels", {}).get("job", "?")),
            instance=str(t.get("labels", {}).get("instance", t.get("scrapeUrl", "?"))),
            health=str(t.get("health", "unknown")),
            last_error=str(t.get("lastError") or ""),
        )
        for t in active
        if t.get("health") != "up"
    ]
    if not active:
        # Our stack always configures targets; none means a wrong or empty prometheus.yml.
        return PrometheusHealth(status="error", url=url, detail="no active scrape targets")
    down.sort(key=lambda t: (t.job, t.instance))
    return PrometheusHealth(status="ok", url=url, targets_total=len(active), targets_down=down)


def _unreachable_detail(exc: Exception, timeout: float) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer within {timeout:g}s (paused or overloaded?)"
    if isinstance(exc, httpx.ConnectError):
        return "connection refused (not running?)"
    return f"{type(exc).__name__}: {exc}"[:120]


def _redis_error_detail(exc: Exception, timeout: float) -> str:
    from redis.exceptions import TimeoutError as RedisTimeout

    text = str(exc)
    if isinstance(exc, (TimeoutError, RedisTimeout)):
        return f"no answer within {timeout:g}s (paused or overloaded?)"
    if "refused" in text or "Error 111" in text:
        return "connection refused (not running?)"
    return f"{type(exc).__name__}: {text}"[:120]


# -- the checks ------------------------------------------------------------------------------


async def _check_service(client: httpx.AsyncClient, url: str, timeout: float) -> ServiceHealth:
    start = time.perf_counter()
    try:
        resp = await client.get(f"{url}/health")
    except httpx.HTTPError as exc:
        detail = _unreachable_detail(exc, timeout)
        return ServiceHealth(status="unreachable", url=url, detail=detail)
    latency = round((time.perf_counter() - start) * 1000, 1)
    try:
        body: Any = resp.json()
    except ValueError:
        body = resp.text
    return parse_service_health(url, resp.status_code, body, latency)


async def _check_breakers(
    client: httpx.AsyncClient, gateway_url: str, timeout: float
) -> BreakersHealth:
    url = f"{gateway_url}/status/breakers"
    try:
        resp = await client.get(url)
        resp.raise_for_status()
        return parse_breakers(url, resp.json())
    except httpx.HTTPStatusError as exc:
        return BreakersHealth(status="error", url=url, detail=f"HTTP {exc.response.status_code}")
    except httpx.HTTPError as exc:
        detail = _unreachable_detail(exc, timeout)
        return BreakersHealth(status="unreachable", url=url, detail=detail)
    except ValueError:
        return BreakersHealth(status="error", url=url, detail="answer is not JSON")


async def _check_prometheus(
    client: httpx.AsyncClient, prom_url: str, timeout: float
) -> PrometheusHealth:
    try:
        ready = await client.get(f"{prom_url}/-/ready")
        if ready.status_code != 200:
            return PrometheusHealth(
                status="not_ready", url=prom_url, detail=f"/-/ready answered {ready.status_code}"
            )
        targets = await client.get(f"{prom_url}/api/v1/targets", params={"state": "active"})
        targets.raise_for_status()
        return parse_targets(prom_url, targets.json())
    except httpx.HTTPStatusError as exc:
        return PrometheusHealth(
            status="error", url=prom_url, detail=f"HTTP {exc.response.status_code}"
        )
    except httpx.HTTPError as exc:
        return PrometheusHealth(
            status="unreachable", url=prom_url, detail=_unreachable_detail(exc, timeout)
        )
    except ValueError:
        return PrometheusHealth(status="error", url=prom_url, detail="answer is not JSON")


async def _check_redis(settings: Settings, timeout: float) -> tuple[RedisHealth, list[ChaosKey]]:
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError

    url = settings.redis_url
    client = aioredis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=True
    )
    try:
        start = time.perf_counter()
        await client.ping()
        latency = round((time.perf_counter() - start) * 1000, 1)
        async with client.pipeline(transaction=False) as pipe:
            for key in CHAOS_KEYS:
                pipe.get(key)
                pipe.ttl(key)
            answers = await pipe.execute()
    except (TimeoutError, RedisError, OSError) as exc:
        detail = _redis_error_detail(exc, timeout)
        return RedisHealth(status="unreachable", url=url, detail=detail), []
    finally:
        await client.aclose()
    chaos = []
    for i, key in enumerate(CHAOS_KEYS):
        value, ttl = answers[2 * i], answers[2 * i + 1]
        if value is not None:
            # TTL -1 means no expiry; -2 means it expired between GET and TTL.
            chaos.append(ChaosKey(key=key, value=value, ttl_s=ttl if ttl >= 0 else None))
    return RedisHealth(status="ok", url=url, latency_ms=latency), chaos


async def check_health_async(
    settings: Settings, timeout: float = DEFAULT_TIMEOUT_S
) -> HealthReport:
    # No proxies from the environment: every address is loopback by contract.
    async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
        service_checks = [_check_service(client, settings.url(s), timeout) for s in SERVICES]
        results = await asyncio.gather(
            *service_checks,
            _check_breakers(client, settings.url("gateway"), timeout),
            _check_prometheus(client, settings.prometheus_url, timeout),
            _check_redis(settings, timeout),
        )
    services = dict(zip(SERVICES, results[: len(SERVICES)], strict=True))
    breakers, prometheus, (redis_health, chaos) = results[len(SERVICES) :]
    return HealthReport.build(
        services=services,
        breakers=breakers,
        redis=redis_health,
        prometheus=prometheus,
        chaos=chaos,
    )


def check_health(settings: Settings, timeout: float = DEFAULT_TIMEOUT_S) -> HealthReport:
    """One concurrent health check of the whole stack; never raises for an unhealthy stack."""
    return asyncio.run(check_health_async(settings, timeout))

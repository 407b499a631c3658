"""Stack health: the runbook's "Health Checks" section as one concurrent look.

Checks, all at once with short timeouts so a paused (SIGSTOPped) process shows up as
"unreachable" within one timeout instead of hanging the command:

- the five services' `GET /health`,
- the breakers from the gateway's `GET /status/breakers`,
- Redis (`PING`) and every chaos key still set in it, with its remaining TTL
  (the runbook's "may have been left enabled"),
- Prometheus: `/-/ready` and whether every active scrape target is up.

`chaosctl health` is the runbook's first command and must start as fast as its curl loop, so
this module imports the standard library only, and little of it. CPU time of
`python -c "import X"` on the 2-core machine (median of 7 under load, minus the bare
interpreter's): httpx ~250 ms, redis-py ~300 ms, pydantic ~210 ms, asyncio ~100 ms,
http.client ~40 ms (it pulls in the email package and ssl); socket + threading + json ~35 ms.
Hence:

- transport: the client layer's socket GET (`chaosctl.clients.http.get`: HTTP/1.0, read to
  the end) and a socket speaking RESP to Redis here, one thread per check. Neither reads
  proxy variables (the contract's trust_env=False for free), and every address is the
  configured loopback host (Settings refuses any other);
- results: the plain dataclasses below, one per pydantic model of
  `chaosctl.results.health`, with the same names, fields and defaults. Those models stay the
  documented contract (`--help`, README, tests/unit/test_json_contracts.py); the tests
  validate what this module builds against them (tests/unit/test_health_report.py checks
  that the two sets of fields agree), so a run does not pay for pydantic.

This module never prints; `chaosctl.cli.health` renders the report.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from chaosctl.clients.http import GET_ERRORS, get
from chaosctl.config import Settings
from chaosctl.domain import CHAOS_KEYS, SERVICES
from chaosctl.errors import ExitCode

__all__ = [
    "CHAOS_KEYS", "Breaker", "BreakersHealth", "ChaosKey", "HealthReport", "PrometheusHealth",
    "RedisHealth", "ServiceHealth", "Target", "build_report", "check_health", "exit_code",
]

DEFAULT_TIMEOUT_S = 2.0
SERVICE_STATUSES = ("ok", "degraded", "down")
BREAKER_STATES = ("closed", "open", "half_open")
TARGET_HEALTH = ("up", "down", "unknown")


# -- the report: plain data shaped like chaosctl.results.health's models ---------------------
# Statuses are the models' Literals (ServiceStatus, BreakerState, ...), kept as plain str here.


@dataclass(slots=True)
class ServiceHealth:
    status: str
    url: str
    latency_ms: float | None = None
    detail: str = ""


@dataclass(slots=True)
class Breaker:
    state: str
    failure_rate: float | None = None
    calls_in_window: int | None = None
    owner: str | None = None
    next_probe_at: float | None = None


@dataclass(slots=True)
class BreakersHealth:
    status: str
    url: str
    detail: str = ""
    states: dict[str, Breaker] = field(default_factory=dict)


@dataclass(slots=True)
class RedisHealth:
    status: str
    url: str
    latency_ms: float | None = None
    detail: str = ""


@dataclass(slots=True)
class Target:
    job: str
    instance: str
    health: str
    last_error: str = ""


@dataclass(slots=True)
class PrometheusHealth:
    status: str
    url: str
    targets_total: int = 0
    detail: str = ""
    targets_down: list[Target] = field(default_factory=list)


@dataclass(slots=True)
class ChaosKey:
    key: str
    value: str
    ttl_s: int | None = None


@dataclass(slots=True)
class HealthReport:
    """`healthy` is true exactly when `problems` is empty."""

    healthy: bool
    problems: list[str]
    services: dict[str, ServiceHealth]
    breakers: BreakersHealth
    redis: RedisHealth
    prometheus: PrometheusHealth
    chaos: list[ChaosKey]
    checked_at: float

    def to_json(self) -> dict[str, Any]:
        """The `chaosctl health --json` object (chaosctl.results.health.HealthReport)."""
        return asdict(self)


def build_report(
    *,
    services: dict[str, ServiceHealth],
    breakers: BreakersHealth,
    redis: RedisHealth,
    prometheus: PrometheusHealth,
    chaos: list[ChaosKey],
    checked_at: float | None = None,
) -> HealthReport:
    """The report with its verdict: healthy exactly when no problem was found."""
    problems = find_problems(services, breakers, redis, prometheus, chaos)
    return HealthReport(
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
        problems.append(f"breakers unknown: gateway /status/breakers {breakers.status}"
                        + (f": {breakers.detail}" if breakers.detail else ""))
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


def _number(value: Any) -> float | None:
    # float() as the model's `float | None` field would: 1 is shown as 1.0.
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else None


def parse_breakers(url: str, body: Any) -> BreakersHealth:
    states = body.get("breakers") if isinstance(body, dict) else None
    if not isinstance(states, dict):
        return BreakersHealth(status="error", url=url, detail=f"unexpected body {repr(body)[:80]}")
    parsed: dict[str, Breaker] = {}
    for downstream, raw in sorted(states.items()):
        raw = raw if isinstance(raw, dict) else {}
        state = raw.get("state")
        if state not in BREAKER_STATES:
            return BreakersHealth(status="error", url=url,
                                  detail=f"unexpected state {state!r} for {downstream}")
        calls = raw.get("calls_in_window")
        owner = raw.get("owner")
        parsed[str(downstream)] = Breaker(
            state=state,
            failure_rate=_number(raw.get("failure_rate")),
            calls_in_window=calls if isinstance(calls, int) and not isinstance(calls, bool)
            else None,
            owner=owner if isinstance(owner, str) else None,
            next_probe_at=_number(raw.get("next_probe_at")),
        )
    return BreakersHealth(status="ok", url=url, states=parsed)


def parse_targets(url: str, body: Any) -> PrometheusHealth:
    """Prometheus `/api/v1/targets` -> which active targets are not up."""
    try:
        active = body["data"]["activeTargets"]
    except (KeyError, TypeError):
        return PrometheusHealth(status="error", url=url, detail="unexpected /api/v1/targets body")
    if not active:
        # Our stack always configures targets; none means a wrong or empty prometheus.yml.
        return PrometheusHealth(status="error", url=url, detail="no active scrape targets")
    down = [
        Target(
            job=str(t.get("labels", {}).get("job", "?")),
            instance=str(t.get("labels", {}).get("instance", t.get("scrapeUrl", "?"))),
            health=t.get("health") if t.get("health") in TARGET_HEALTH else "unknown",
            last_error=str(t.get("lastError") or ""),
        )
        for t in active
        if t.get("health") != "up"
    ]
    down.sort(key=lambda t: (t.job, t.instance))
    return PrometheusHealth(status="ok", url=url, targets_total=len(active), targets_down=down)


def _unreachable_detail(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError since Python 3.10
        return f"no answer within {timeout:g}s (paused or overloaded?)"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (not running?)"
    return f"{type(exc).__name__}: {exc}"[:120]


# -- transport: one short-lived connection per check ------------------------------------------




class RedisReplyError(Exception):
    """Redis answered with an error reply (e.g. NOAUTH)."""


def _resp(*words: str) -> bytes:
    out = [f"*{len(words)}\r\n".encode()]
    for word in words:
        data = word.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _read_reply(stream: Any) -> Any:
    line = stream.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionResetError("Redis closed the connection mid-reply")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RedisReplyError(rest.decode(errors="replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        if size < 0:
            return None
        data = stream.read(size + 2)
        return data[:-2].decode(errors="replace")
    if kind == b"*":
        return [_read_reply(stream) for _ in range(int(rest))]
    raise RedisReplyError(f"unexpected reply {line[:40]!r}")


# -- the checks ------------------------------------------------------------------------------


def _check_service(url: str, timeout: float) -> ServiceHealth:
    start = time.perf_counter()
    try:
        answer = get(f"{url}/health", timeout)
    except GET_ERRORS as exc:
        return ServiceHealth(status="unreachable", url=url,
                             detail=_unreachable_detail(exc, timeout))
    latency = round((time.perf_counter() - start) * 1000, 1)
    try:
        body: Any = answer.json()
    except ValueError:
        body = answer.body.decode(errors="replace")
    return parse_service_health(url, answer.status, body, latency)


def _check_breakers(gateway_url: str, timeout: float) -> BreakersHealth:
    url = f"{gateway_url}/status/breakers"
    try:
        answer = get(url, timeout)
    except GET_ERRORS as exc:
        return BreakersHealth(status="unreachable", url=url,
                              detail=_unreachable_detail(exc, timeout))
    if answer.status >= 400:
        return BreakersHealth(status="error", url=url, detail=f"HTTP {answer.status}")
    try:
        return parse_breakers(url, answer.json())
    except ValueError:
        return BreakersHealth(status="error", url=url, detail="answer is not JSON")


def _check_prometheus(prom_url: str, timeout: float) -> PrometheusHealth:
    try:
        ready = get(f"{prom_url}/-/ready", timeout)
        if ready.status != 200:
            return PrometheusHealth(status="not_ready", url=prom_url,
                                    detail=f"/-/ready answered {ready.status}")
        targets = get(f"{prom_url}/api/v1/targets?state=active", timeout)
    except GET_ERRORS as exc:
        return PrometheusHealth(status="unreachable", url=prom_url,
                                detail=_unreachable_detail(exc, timeout))
    if targets.status >= 400:
        return PrometheusHealth(status="error", url=prom_url, detail=f"HTTP {targets.status}")
    try:
        return parse_targets(prom_url, targets.json())
    except ValueError:
        return PrometheusHealth(status="error", url=prom_url, detail="answer is not JSON")


def _check_redis(settings: Settings, timeout: float) -> tuple[RedisHealth, list[ChaosKey]]:
    url = settings.redis_url
    try:
        with socket.create_connection((settings.host.encode(), settings.redis_port),
                                      timeout=timeout) as sock:
            stream = sock.makefile("rb")
            start = time.perf_counter()
            sock.sendall(_resp("PING"))
            _read_reply(stream)
            latency = round((time.perf_counter() - start) * 1000, 1)
            # One pipelined round trip: GET and TTL of every chaos key.
            sock.sendall(b"".join(_resp(op, key) for key in CHAOS_KEYS for op in ("GET", "TTL")))
            answers = [_read_reply(stream) for _ in range(2 * len(CHAOS_KEYS))]
    except (OSError, RedisReplyError, ValueError) as exc:
        return RedisHealth(status="unreachable", url=url,
                           detail=_unreachable_detail(exc, timeout)), []
    chaos = []
    for i, key in enumerate(CHAOS_KEYS):
        value, ttl = answers[2 * i], answers[2 * i + 1]
        if value is not None:
            # TTL -1 means no expiry; -2 means it expired between GET and TTL.
            chaos.append(ChaosKey(key=key, value=value, ttl_s=ttl if ttl >= 0 else None))
    return RedisHealth(status="ok", url=url, latency_ms=latency), chaos


T = TypeVar("T")


def _in_thread(fn: Callable[..., T], *args: Any) -> Callable[[], T]:
    """Start fn(*args) in a daemon thread; the returned callable waits for its result."""
    box: list[Any] = []

    def target() -> None:
        try:
            box.append((True, fn(*args)))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box.append((False, exc))

    thread = threading.Thread(target=target, daemon=True)
    thread.start()

    def result() -> T:
        thread.join()
        ok, value = box[0]
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    return result


def check_health(settings: Settings, timeout: float = DEFAULT_TIMEOUT_S) -> HealthReport:
    """One concurrent health check of the whole stack; never raises for an unhealthy stack.

    Safe to call from any thread, inside a running event loop or not (no asyncio here).
    """
    services = {name: _in_thread(_check_service, settings.url(name), timeout)
                for name in SERVICES}
    breakers = _in_thread(_check_breakers, settings.url("gateway"), timeout)
    prometheus = _in_thread(_check_prometheus, settings.prometheus_url, timeout)
    redis_health, chaos = _check_redis(settings, timeout)  # this thread's share of the work
    return build_report(
        services={name: wait() for name, wait in services.items()},
        breakers=breakers(),
        redis=redis_health,
        prometheus=prometheus(),
        chaos=chaos,
    )

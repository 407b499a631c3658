"""Service settings from the environment (see stack/README.md for the table).

Read with pydantic-settings: every variable is `SHOP_<FIELD>`; three keep the unprefixed
names they have always had (DATABASE_URL, CHAOSCTL_ADMIN_TOKEN; PROMETHEUS_MULTIPROC_DIR is
read by prometheus_client itself), and `SHOP_DATABASE_URL` / `SHOP_ADMIN_TOKEN` are accepted
too. An empty variable means the default. A bad value stops the service at start with one
line naming the variable (`ConfigError`, exit 2 in shop.serve), never a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BeforeValidator, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICE_NAMES = ("gateway", "orders", "payments", "inventory", "notifications")
DEFAULT_PORTS = {"gateway": 8000, "orders": 8001, "payments": 8002, "inventory": 8003,
                 "notifications": 8004}
FALSE_WORDS = ("0", "false", "no", "off")
TRUE_WORDS = ("1", "true", "yes", "on")


class ConfigError(ValueError):
    """A setting the service cannot start with; the message names the variable."""


def _switch(value: Any) -> Any:
    """`0`/`false`/`no`/`off` switch a pattern off, `1`/`true`/`yes`/`on` on; anything else
    is refused (it used to mean "on" silently)."""
    if isinstance(value, str):
        word = value.strip().lower()
        if word in FALSE_WORDS:
            return False
        if word in TRUE_WORDS:
            return True
        raise ValueError(f"use one of {', '.join(TRUE_WORDS + FALSE_WORDS)}")
    return value


Switch = Annotated[bool, BeforeValidator(_switch)]
Seconds = Annotated[float, Field(gt=0, le=3600)]


class ShopEnv(BaseSettings):
    """The variables, as read; `ShopSettings.from_env` turns them into the services' view."""

    model_config = SettingsConfigDict(env_prefix="SHOP_", env_ignore_empty=True,
                                      extra="ignore", case_sensitive=False)

    redis_url: str = "redis://127.0.0.1:6379/0"
    data_dir: Path = Path("./data")
    database_url: str | None = Field(
        None, validation_alias=AliasChoices("SHOP_DATABASE_URL", "DATABASE_URL"))
    admin_token: str | None = Field(
        None, validation_alias=AliasChoices("SHOP_ADMIN_TOKEN", "CHAOSCTL_ADMIN_TOKEN"))
    gateway_url: str = "http://127.0.0.1:8000"
    orders_url: str = "http://127.0.0.1:8001"
    payments_url: str = "http://127.0.0.1:8002"
    inventory_url: str = "http://127.0.0.1:8003"
    notifications_url: str = "http://127.0.0.1:8004"
    replica: int = Field(0, ge=0)
    retries: Switch = True
    breakers: Switch = True
    bulkheads: Switch = True
    load_shedding: Switch = True
    idempotency: Switch = True
    # Off: orders notifies notifications directly after each order (best effort, in the
    # request) instead of through the transactional outbox; the study's A-E have none.
    outbox: Switch = True
    adaptive_limit: Switch = True
    # Off: the gateway's refusals go through uvicorn's request cycle to the ASGI middleware
    # instead of being answered by the HTTP protocol (shop/shed_protocol.py); the same 429.
    early_shed: Switch = True
    max_inflight: int = Field(200, ge=1, le=100_000)
    min_inflight: int = Field(4, ge=1, le=100_000)
    initial_inflight: int = Field(8, ge=1, le=100_000)
    limit_tolerance: float = Field(1.5, ge=1, le=10)
    max_queue_ms: float = Field(50.0, ge=0, le=10_000)
    breaker_open_s: Seconds = 30.0
    breaker_failure_rate: float = Field(0.5, gt=0, le=1)
    breaker_min_calls: int = Field(10, ge=1)
    breaker_window_s: Seconds = 10.0
    half_open_probes: int = Field(3, ge=1)
    bulkhead_size: int = Field(20, ge=1)
    gateway_bulkhead: int = Field(64, ge=1)
    bulkhead_wait_s: float = Field(0.05, ge=0, le=60)
    # 20 % payment errors need 0.248 retries per call for 99.8 % success (4 attempts):
    # a 0.2 budget ran out (96 %); see stack/BENCHMARKS.md for what each knob costs. The
    # floor carries low rates through bursts of errors: at 10 orders/s a 2/s floor (30 per
    # 10 s from the ratio) gave 99.0 %, 5/s 99.75 %, both at 1.24-1.25x (Finagle's is 10/s).
    retry_budget_ratio: float = Field(0.3, ge=0, le=1000)
    retry_budget_floor: float = Field(5.0, ge=0, le=10_000)
    retry_max_attempts: int = Field(4, ge=1, le=10)
    # Backoff before retry n: base * 2^(n-1), capped at 1 s; with jitter a uniform draw
    # below that. 0 and no jitter are the study's naive retries (immediate).
    retry_backoff_s: float = Field(0.05, ge=0, le=60)
    retry_jitter: Switch = True
    chaos_ttl_s: int = Field(900, ge=1, le=86400)
    request_budget_s: Seconds = 10.0
    timeout_orders_s: Seconds = 8.0
    timeout_payments_s: Seconds = 2.0
    timeout_inventory_s: Seconds = 2.5
    timeout_notifications_s: Seconds = 2.0
    recovery_grace_s: Seconds = 5.0
    recovery_interval_s: Seconds = 1.0
    # uvicorn's event loop and HTTP parser (shop.serve); "auto" takes uvloop and httptools.
    loop: Literal["auto", "asyncio", "uvloop"] = "auto"
    http: Literal["auto", "h11", "httptools"] = "auto"


SWITCHES = tuple(name for name, f in ShopEnv.model_fields.items() if f.metadata
                 and any(isinstance(m, BeforeValidator) and m.func is _switch
                         for m in f.metadata))


def _env_names(name: str) -> str:
    alias = ShopEnv.model_fields[name].validation_alias
    if isinstance(alias, AliasChoices):
        return " / ".join(str(a) for a in alias.choices)
    return f"SHOP_{name.upper()}"


def read_env() -> ShopEnv:
    """The environment, validated; ConfigError names each bad variable and its value."""
    import os

    # An empty switch has always meant "off" (and an empty number "the default").
    off = {name: False for name in SWITCHES if os.environ.get(f"SHOP_{name.upper()}") == ""}
    try:
        return ShopEnv(**off)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = str(err["loc"][0]) if err["loc"] else "?"
            field_name = name.lower().removeprefix("shop_")
            env = _env_names(field_name) if field_name in ShopEnv.model_fields else name
            raw = next((os.environ[n] for n in env.split(" / ") if n in os.environ), None)
            shown = f"={raw!r}" if raw is not None else ""
            problems.append(f"{env}{shown}: {err['msg']}")
        raise ConfigError("; ".join(problems)) from None


@dataclass(frozen=True)
class ShopSettings:
    service: str
    redis_url: str
    data_dir: Path
    database_url: str | None
    admin_token: str | None
    urls: dict[str, str]
    replica: int = 0
    retries: bool = True
    breakers: bool = True
    bulkheads: bool = True
    load_shedding: bool = True
    idempotency: bool = True
    outbox: bool = True
    adaptive_limit: bool = True
    max_inflight: int = 200
    min_inflight: int = 4
    initial_inflight: int = 8
    limit_tolerance: float = 1.5
    max_queue_s: float = 0.05
    breaker_open_s: float = 30.0
    breaker_failure_rate: float = 0.5
    breaker_min_calls: int = 10
    breaker_window_s: float = 10.0
    half_open_probes: int = 3
    bulkhead_size: int = 20
    gateway_bulkhead: int = 64
    bulkhead_wait_s: float = 0.05
    retry_budget_ratio: float = 0.3
    retry_budget_floor: float = 5.0
    retry_max_attempts: int = 4
    retry_backoff_s: float = 0.05
    retry_jitter: bool = True
    chaos_ttl_s: int = 900
    request_budget_s: float = 10.0
    hop_timeouts: dict[str, float] = field(default_factory=dict)
    max_body_bytes: int = 64 * 1024
    recovery_grace_s: float = 5.0
    recovery_interval_s: float = 1.0

    @classmethod
    def from_env(cls, service: str) -> ShopSettings:
        env = read_env()
        return cls(
            service=service,
            redis_url=env.redis_url,
            data_dir=env.data_dir,
            database_url=env.database_url or None,
            admin_token=env.admin_token or None,
            urls={name: getattr(env, f"{name}_url") for name in SERVICE_NAMES},
            replica=env.replica,
            retries=env.retries,
            breakers=env.breakers,
            bulkheads=env.bulkheads,
            load_shedding=env.load_shedding,
            idempotency=env.idempotency,
            outbox=env.outbox,
            adaptive_limit=env.adaptive_limit,
            max_inflight=env.max_inflight,
            min_inflight=min(env.min_inflight, env.max_inflight),
            initial_inflight=env.initial_inflight,
            limit_tolerance=env.limit_tolerance,
            max_queue_s=env.max_queue_ms / 1000.0,
            breaker_open_s=env.breaker_open_s,
            breaker_failure_rate=env.breaker_failure_rate,
            breaker_min_calls=env.breaker_min_calls,
            breaker_window_s=env.breaker_window_s,
            half_open_probes=env.half_open_probes,
            bulkhead_size=env.bulkhead_size,
            gateway_bulkhead=env.gateway_bulkhead,
            bulkhead_wait_s=env.bulkhead_wait_s,
            retry_budget_ratio=env.retry_budget_ratio,
            retry_budget_floor=env.retry_budget_floor,
            retry_max_attempts=env.retry_max_attempts,
            retry_backoff_s=env.retry_backoff_s,
            retry_jitter=env.retry_jitter,
            chaos_ttl_s=env.chaos_ttl_s,
            request_budget_s=env.request_budget_s,
            # Per-hop timeouts: a slow payment (chaos latency 3 s) must fail fast, not hang
            # orders.
            hop_timeouts={
                "orders": env.timeout_orders_s,
                "payments": env.timeout_payments_s,
                "inventory": env.timeout_inventory_s,
                "notifications": env.timeout_notifications_s,
            },
            recovery_grace_s=env.recovery_grace_s,
            recovery_interval_s=env.recovery_interval_s,
        )

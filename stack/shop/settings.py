"""Service settings from the environment (see stack/README.md for the table)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

SERVICE_NAMES = ("gateway", "orders", "payments", "inventory", "notifications")
DEFAULT_PORTS = {"gateway": 8000, "orders": 8001, "payments": 8002, "inventory": 8003,
                 "notifications": 8004}


def _flag(name: str, default: bool = True) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return raw.strip().lower() not in ("0", "false", "no", "off", "")


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw not in (None, "") else default


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


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
    max_inflight: int = 200
    breaker_open_s: float = 30.0
    breaker_failure_rate: float = 0.5
    breaker_min_calls: int = 10
    breaker_window_s: float = 10.0
    half_open_probes: int = 3
    bulkhead_size: int = 20
    gateway_bulkhead: int = 64
    bulkhead_wait_s: float = 0.05
    retry_budget_ratio: float = 0.2
    chaos_ttl_s: int = 900
    request_budget_s: float = 10.0
    hop_timeouts: dict[str, float] = field(default_factory=dict)
    max_body_bytes: int = 64 * 1024

    @classmethod
    def from_env(cls, service: str) -> ShopSettings:
        urls = {
            name: os.environ.get(f"SHOP_{name.upper()}_URL", f"http://127.0.0.1:{port}")
            for name, port in DEFAULT_PORTS.items()
        }
        return cls(
            service=service,
            redis_url=os.environ.get("SHOP_REDIS_URL", "redis://127.0.0.1:6379/0"),
            data_dir=Path(os.environ.get("SHOP_DATA_DIR", "./data")),
            database_url=os.environ.get("DATABASE_URL") or None,
            admin_token=os.environ.get("CHAOSCTL_ADMIN_TOKEN") or None,
            urls=urls,
            replica=_int("SHOP_REPLICA", 0),
            retries=_flag("SHOP_RETRIES"),
            breakers=_flag("SHOP_BREAKERS"),
            bulkheads=_flag("SHOP_BULKHEADS"),
            load_shedding=_flag("SHOP_LOAD_SHEDDING"),
            idempotency=_flag("SHOP_IDEMPOTENCY"),
            max_inflight=_int("SHOP_MAX_INFLIGHT", 200),
            breaker_open_s=_float("SHOP_BREAKER_OPEN_S", 30.0),
            breaker_failure_rate=_float("SHOP_BREAKER_FAILURE_RATE", 0.5),
            breaker_min_calls=_int("SHOP_BREAKER_MIN_CALLS", 10),
            breaker_window_s=_float("SHOP_BREAKER_WINDOW_S", 10.0),
            half_open_probes=_int("SHOP_HALF_OPEN_PROBES", 3),
            bulkhead_size=_int("SHOP_BULKHEAD_SIZE", 20),
            gateway_bulkhead=_int("SHOP_GATEWAY_BULKHEAD", 64),
            bulkhead_wait_s=_float("SHOP_BULKHEAD_WAIT_S", 0.05),
            retry_budget_ratio=_float("SHOP_RETRY_BUDGET_RATIO", 0.2),
            chaos_ttl_s=_int("SHOP_CHAOS_TTL_S", 900),
            request_budget_s=_float("SHOP_REQUEST_BUDGET_S", 10.0),
            # Per-hop timeouts: a slow payment (chaos latency 3 s) must fail fast, not hang orders.
            hop_timeouts={
                "orders": _float("SHOP_TIMEOUT_ORDERS_S", 8.0),
                "payments": _float("SHOP_TIMEOUT_PAYMENTS_S", 2.0),
                "inventory": _float("SHOP_TIMEOUT_INVENTORY_S", 2.5),
                "notifications": _float("SHOP_TIMEOUT_NOTIFICATIONS_S", 2.0),
            },
        )

"""Settings: where the stack listens and where its state lives.

Precedence, highest first: command-line flags (passed as overrides), `CHAOSCTL_*` environment
variables, the config file (`$CHAOSCTL_CONFIG`, else `$CHAOSCTL_HOME/config.toml`), defaults.
Defaults are the runbook's ports on 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from chaosctl.domain import SERVICES  # noqa: F401 - re-exported while callers move to domain
from chaosctl.errors import ConfigError


def is_loopback(host: str) -> bool:
    """localhost or a loopback IP; a name that merely starts with "127." is not."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def default_home() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "chaosctl"


class Settings(BaseSettings):
    """Everything a command needs to find and drive the stack."""

    model_config = SettingsConfigDict(env_prefix="CHAOSCTL_", extra="forbid")

    home: Path = Field(default_factory=default_home)
    host: str = "127.0.0.1"
    gateway_port: int = 8000
    orders_port: int = 8001
    payments_port: int = 8002
    inventory_port: int = 8003
    notifications_port: int = 8004
    redis_port: int = 6379
    prometheus_port: int = 9090
    # PostgreSQL for the orders/payments/inventory/notifications data when set; SQLite otherwise.
    database_url: str | None = None
    # Seconds a service or dependency has to become healthy during `stack up`.
    start_timeout: float = 60.0
    backend: str = "local"

    @field_validator(
        "gateway_port", "orders_port", "payments_port", "inventory_port",
        "notifications_port", "redis_port", "prometheus_port",
    )
    @classmethod
    def _port_range(cls, v: int) -> int:
        if not 1 <= v <= 65535:
            raise ValueError(f"port {v} is outside 1-65535")
        return v

    @field_validator("host")
    @classmethod
    def _loopback_only(cls, v: str) -> str:
        if not is_loopback(v):
            raise ValueError(
                f"host {v!r} is not a loopback address; chaosctl only drives 127.0.0.1"
            )
        return v

    # -- derived -----------------------------------------------------------------------
    def port(self, service: str) -> int:
        if service == "redis":
            return self.redis_port
        if service == "prometheus":
            return self.prometheus_port
        return int(getattr(self, f"{service}_port"))

    def url(self, service: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port(service)}"

    @property
    def redis_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"redis://{host}:{self.redis_port}/0"

    @property
    def prometheus_url(self) -> str:
        return self.url("prometheus")

    @property
    def admin_token_file(self) -> Path:
        return self.home / "admin_token"

    def admin_token(self) -> str | None:
        """The admin token written by `stack up` (or CHAOSCTL_ADMIN_TOKEN when set)."""
        env = os.environ.get("CHAOSCTL_ADMIN_TOKEN")
        if env:
            return env
        try:
            return self.admin_token_file.read_text().strip() or None
        except OSError:
            return None


def _config_file(overrides: dict[str, Any]) -> Path | None:
    explicit = os.environ.get("CHAOSCTL_CONFIG")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(
                f"config file {path} (from CHAOSCTL_CONFIG) does not exist",
                hint="create it or unset CHAOSCTL_CONFIG",
            )
        return path
    home = overrides.get("home") or os.environ.get("CHAOSCTL_HOME") or default_home()
    path = Path(home) / "config.toml"
    return path if path.is_file() else None


def _read_config_file(path: Path) -> dict[str, Any]:
    """The TOML table in `path`; ConfigError (exit 2) naming the file for any unreadable one."""
    fix = f"fix {path} (TOML, UTF-8, e.g. gateway_port = 8000) or point CHAOSCTL_CONFIG elsewhere"
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {exc.start})",
                          hint=fix) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}", hint=fix) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}", hint=fix) from None


def load_settings(**overrides: Any) -> Settings:
    """Build the settings; raise ConfigError naming the bad field and source."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    file_values: dict[str, Any] = {}
    path = _config_file(overrides)
    if path is not None:
        file_values = _read_config_file(path)
    env_keys = {
        name for name in Settings.model_fields if f"CHAOSCTL_{name.upper()}" in os.environ
    }
    # Environment beats the file: drop file values that the environment also sets.
    init = {k: v for k, v in file_values.items() if k not in env_keys}
    init.update(overrides)
    try:
        return Settings(**init)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        where = f" (config file {path} or CHAOSCTL_* environment)" if path else " (CHAOSCTL_*)"
        raise ConfigError(f"invalid configuration{where}: {problems}",
                          hint="fix that value in the file or the CHAOSCTL_* variable") from None

"""Settings: where the stack listens and where its state lives.

Precedence, highest first: command-line flags (passed as overrides), `CHAOSCTL_*` environment
variables, the config file (`$CHAOSCTL_CONFIG`, else `$CHAOSCTL_HOME/config.toml`), defaults.
Defaults are the runbook's ports on 127.0.0.1.

Why a stdlib dataclass and not a pydantic-settings model (it was one until issue 11): every
command loads the settings, `chaosctl health` first of all, and that command must start as
fast as the runbook's curl loop. CPU time of `python -c "import X"` on the 2-core machine
(getrusage of the child, median of 7-15 runs, loaded machine): bare interpreter 20-24 ms,
pydantic 231 ms, pydantic_settings 411 ms, this module as a pydantic-settings model 456 ms;
as this dataclass 80 ms, of which 66 ms is chaosctl.domain's standard-library imports.
Twelve fields with their checks cost less code than that.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from chaosctl.domain import is_loopback
from chaosctl.errors import ConfigError

ENV_PREFIX = "CHAOSCTL_"


def default_home() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "chaosctl"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a command needs to find and drive the stack.

    `Settings(...)` holds exactly the values given (checked, strings converted like values
    from the environment); `load_settings()` adds the config file and `CHAOSCTL_*` variables.
    A bad value raises ConfigError (exit 2) naming the field.
    """

    home: Path = field(default_factory=default_home)
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
    # The kubernetes backend: kubeconfig file (else $KUBECONFIG, ~/.kube/config, in-cluster)
    # and the namespace of the stack (else "chaosctl", the one stack/k8s names).
    kubeconfig: str | None = None
    namespace: str | None = None

    def __post_init__(self) -> None:
        values, problems = _checked({name: getattr(self, name) for name in FIELDS})
        if problems:
            raise ConfigError(f"invalid settings: {'; '.join(problems)}",
                              hint="pass values of the documented types")
        for name, value in values.items():
            object.__setattr__(self, name, value)  # frozen: only the converted value

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

    # -- passing settings to a subprocess (chaos workers) ------------------------------
    def to_json(self) -> str:
        """Every field as one JSON object; `Settings.from_json` reads it back."""
        return json.dumps({name: (str(value) if isinstance(value, Path) else value)
                           for name in FIELDS for value in (getattr(self, name),)})

    @classmethod
    def from_json(cls, raw: str) -> Settings:
        """The settings `to_json` wrote; ConfigError for anything else."""
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise ConfigError(f"settings JSON is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError("settings JSON is not an object")
        unknown = sorted(set(data) - set(FIELDS))
        if unknown:
            raise ConfigError(f"invalid settings: {_unknown(unknown)}")
        return cls(**data)


FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Settings))
PORT_FIELDS = frozenset(name for name in FIELDS if name.endswith("_port"))


# -- conversion and checks: one "field: problem" line per bad value --------------------------


def _int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("+-").isdigit():
            return int(text)
    raise ValueError(f"{value!r} is not an integer")


def _float(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise ValueError(f"{value!r} is not a number")


def _str(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise ValueError(f"{value!r} is not a string")


def _home(value: Any) -> Path:
    if isinstance(value, Path):
        return value
    if isinstance(value, str) and value:
        return Path(value)
    raise ValueError(f"{value!r} is not a directory path")


def _host(value: Any) -> str:
    host = _str(value)
    if not is_loopback(host):
        raise ValueError(f"{host!r} is not a loopback address; chaosctl only drives 127.0.0.1")
    return host


def _port(value: Any) -> int:
    port = _int(value)
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is outside 1-65535")
    return port


def _timeout(value: Any) -> float:
    seconds = _float(value)
    if not seconds > 0:  # also refuses NaN
        raise ValueError(f"{value!r} is not a positive number of seconds")
    return seconds


def _optional_str(value: Any) -> str | None:
    return None if value is None else _str(value)


_CONVERT = {"home": _home, "host": _host, "database_url": _optional_str,
            "start_timeout": _timeout, "backend": _str, "kubeconfig": _optional_str,
            "namespace": _optional_str}


def _checked(values: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """`values` converted to the fields' types, and a "field: problem" line for each bad one."""
    out: dict[str, Any] = {}
    problems: list[str] = []
    for name, value in values.items():
        convert = _port if name in PORT_FIELDS else _CONVERT[name]
        try:
            out[name] = convert(value)
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
    return out, problems


def _unknown(names: list[str]) -> str:
    return "; ".join(f"{name}: unknown setting (known: {', '.join(FIELDS)})" for name in names)


# -- sources -----------------------------------------------------------------------------------


def _config_file(overrides: dict[str, Any], env: dict[str, str]) -> Path | None:
    explicit = os.environ.get("CHAOSCTL_CONFIG")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(
                f"config file {path} (from CHAOSCTL_CONFIG) does not exist",
                hint="create it or unset CHAOSCTL_CONFIG",
            )
        return path
    home = overrides.get("home") or env.get("home") or default_home()
    path = Path(home) / "config.toml"
    return path if path.is_file() else None


def _read_config_file(path: Path) -> dict[str, Any]:
    """The TOML table in `path`; ConfigError (exit 2) naming the file for any unreadable one."""
    import tomllib  # only when there is a file: it costs more than the rest of this module

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


def _environment() -> dict[str, str]:
    """The `CHAOSCTL_<FIELD>` variables that name a field (case-insensitive, as before)."""
    found: dict[str, str] = {}
    for key, value in os.environ.items():
        upper = key.upper()
        if upper.startswith(ENV_PREFIX):
            name = upper[len(ENV_PREFIX):].lower()
            if name in FIELDS:
                found[name] = value
    return found


def load_settings(**overrides: Any) -> Settings:
    """Build the settings; raise ConfigError naming the bad field and source."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(overrides) - set(FIELDS))
    if unknown:
        raise TypeError(f"load_settings() got unknown settings {unknown}")
    env = _environment()
    path = _config_file(overrides, env)
    file_values = _read_config_file(path) if path is not None else {}
    # Flags beat the environment, which beats the file, which beats the defaults.
    merged = {**file_values, **env, **overrides}
    values, problems = _checked({k: v for k, v in merged.items() if k in FIELDS})
    bad_keys = sorted(k for k in file_values if k not in FIELDS)
    if bad_keys:
        problems.append(_unknown(bad_keys))
    if problems:
        where = f" (config file {path} or CHAOSCTL_* environment)" if path else " (CHAOSCTL_*)"
        raise ConfigError(f"invalid configuration{where}: {'; '.join(problems)}",
                          hint="fix that value in the file or the CHAOSCTL_* variable")
    return Settings(**values)

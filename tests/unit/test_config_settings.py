"""Settings without pydantic: precedence, conversion, checks and the JSON hand-over to workers.

Flags beat CHAOSCTL_* variables, which beat the config file, which beats the defaults; every
bad value is named in one ConfigError (exit 2) with its source.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chaosctl.config import FIELDS, Settings, load_settings
from chaosctl.errors import ConfigError, ExitCode


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for key in list(os.environ):
        if key.upper().startswith("CHAOSCTL_"):
            monkeypatch.delenv(key)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("CHAOSCTL_HOME", str(home))
    return home


def test_flags_beat_env_beat_file_beat_defaults(clean_env: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    (clean_env / "config.toml").write_text(
        "gateway_port = 9001\norders_port = 9002\npayments_port = 9003\n")
    monkeypatch.setenv("CHAOSCTL_GATEWAY_PORT", "9101")
    monkeypatch.setenv("CHAOSCTL_ORDERS_PORT", "9102")
    settings = load_settings(gateway_port=9201)
    assert (settings.gateway_port, settings.orders_port, settings.payments_port,
            settings.inventory_port) == (9201, 9102, 9003, 8003)
    assert settings.home == clean_env
    assert settings.url("gateway") == "http://127.0.0.1:9201"
    assert settings.redis_url == "redis://127.0.0.1:6379/0"


def test_environment_values_are_converted_to_the_fields_types(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAOSCTL_START_TIMEOUT", "0.5")
    monkeypatch.setenv("CHAOSCTL_DATABASE_URL", "postgresql://127.0.0.1/shop")
    monkeypatch.setenv("CHAOSCTL_HOST", "::1")
    settings = load_settings()
    assert settings.start_timeout == 0.5
    assert settings.database_url == "postgresql://127.0.0.1/shop"
    assert settings.url("orders") == "http://[::1]:8001"


def test_every_bad_value_is_named_with_its_source(clean_env: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    path = clean_env / "config.toml"
    path.write_text('redis_port = "x"\nhost = "10.0.0.1"\nstart_timeout = "soon"\n'
                    "colour = 1\nprometheus_port = true\n")
    monkeypatch.setenv("CHAOSCTL_GATEWAY_PORT", "70000")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith(f"invalid configuration (config file {path} or CHAOSCTL_*")
    for expected in ("redis_port: 'x' is not an integer", "host: '10.0.0.1' is not a loopback",
                     "start_timeout: 'soon' is not a number", "colour: unknown setting",
                     "prometheus_port: True is not an integer",
                     "gateway_port: port 70000 is outside 1-65535"):
        assert expected in message
    assert caught.value.exit_code == ExitCode.USAGE


def test_a_good_environment_value_hides_a_bad_one_in_the_file(
        clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (clean_env / "config.toml").write_text('redis_port = "x"\n')
    monkeypatch.setenv("CHAOSCTL_REDIS_PORT", "7000")
    assert load_settings().redis_port == 7000


def test_direct_construction_converts_and_checks() -> None:
    settings = Settings(home="/tmp/somewhere", gateway_port="18000")  # type: ignore[arg-type]
    assert settings.home == Path("/tmp/somewhere") and settings.gateway_port == 18000
    with pytest.raises(ConfigError, match="orders_port: port 0 is outside"):
        Settings(orders_port=0)
    with pytest.raises(ConfigError, match="host: 'example.com' is not a loopback"):
        Settings(host="example.com")
    with pytest.raises(AttributeError):
        settings.gateway_port = 1  # type: ignore[misc]  # frozen


def test_settings_travel_to_a_worker_as_json_and_back(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, host="localhost", payments_port=18002,
                        database_url="postgresql://127.0.0.1/x", start_timeout=1.5)
    raw = settings.to_json()
    assert Settings.from_json(raw) == settings
    assert set(Settings.from_json(raw).__slots__) == set(FIELDS)
    for bad, why in (("[1]", "not an object"), ("{", "not valid JSON"),
                     ('{"colour": 1}', "colour: unknown setting"),
                     ('{"redis_port": 0}', "redis_port: port 0")):
        with pytest.raises(ConfigError, match=why):
            Settings.from_json(bad)

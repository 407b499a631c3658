"""`chaosctl health` exit codes without a stack: bad config -> 2, nothing listening -> 1.

Runs the real CLI in a subprocess (the entry point's error handler is part of the contract).
"Nothing listening" uses free loopback ports, so the checks really connect and are refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support import free_ports

PORT_NAMES = ("gateway", "orders", "payments", "inventory", "notifications", "redis",
              "prometheus")


def run_health(*args: str, env_extra: dict[str, str], home: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAOSCTL_")}
    env["CHAOSCTL_HOME"] = str(home)
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-m", "chaosctl.cli.main", "health", *args],
        env=env, capture_output=True, text=True, timeout=60,
    )


def closed_ports_env() -> dict[str, str]:
    ports = free_ports(len(PORT_NAMES))
    return {f"CHAOSCTL_{n.upper()}_PORT": str(p) for n, p in zip(PORT_NAMES, ports, strict=True)}


def test_missing_config_file_exits_2_naming_it(tmp_path: Path) -> None:
    result = run_health(env_extra={"CHAOSCTL_CONFIG": str(tmp_path / "nope.toml")}, home=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "nope.toml" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_invalid_port_exits_2_naming_the_field(tmp_path: Path) -> None:
    result = run_health("--json", env_extra={"CHAOSCTL_GATEWAY_PORT": "70000"}, home=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "gateway_port" in result.stderr


def test_invalid_config_toml_exits_2(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("redis_port = 'not a number'\n")
    result = run_health(env_extra={}, home=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "redis_port" in result.stderr


def test_count_without_watch_is_a_usage_error(tmp_path: Path) -> None:
    result = run_health("--count", "2", env_extra=closed_ports_env(), home=tmp_path)
    assert result.returncode == 2
    assert "--watch" in result.stderr


def test_nothing_running_exits_1_with_everything_unreachable(tmp_path: Path) -> None:
    env = closed_ports_env()
    result = run_health("--json", env_extra=env, home=tmp_path)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["healthy"] is False
    for name in ("gateway", "orders", "payments", "inventory", "notifications"):
        service = report["services"][name]
        assert service["status"] == "unreachable"
        assert service["url"].endswith(f":{env[f'CHAOSCTL_{name.upper()}_PORT']}")
    assert report["redis"]["status"] == "unreachable"
    assert report["prometheus"]["status"] == "unreachable"
    assert report["breakers"]["status"] == "unreachable"
    assert report["chaos"] == []


def test_watch_json_with_count_prints_one_object_per_refresh(tmp_path: Path) -> None:
    result = run_health("--watch", "--json", "--count", "2", "--interval", "0.2",
                        env_extra=closed_ports_env(), home=tmp_path)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2
    assert all(json.loads(line)["healthy"] is False for line in lines)


def test_table_output_names_the_problems(tmp_path: Path) -> None:
    result = run_health(env_extra=closed_ports_env(), home=tmp_path)
    assert result.returncode == 1
    assert "UNHEALTHY" in result.stdout
    assert "gateway is unreachable" in result.stdout

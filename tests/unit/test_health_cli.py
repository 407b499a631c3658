"""`chaosctl health` exit codes without a stack: bad config -> 2, nothing listening -> 1.

Runs the real CLI in a subprocess (the entry point's error handler is part of the contract).
"Nothing listening" uses free loopback ports, so the checks really connect and are refused.
Also: the typer-free fast path parses every command line it accepts exactly as the typer
command does, and `health --json` imports none of the heavy libraries.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from chaosctl.cli import health as health_cli
from chaosctl.cli.health import Options, parse_fast
from chaosctl.cli.main import load_command
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


# Command lines the fast path takes: each must mean the same to typer.
FAST = [
    [], ["--json"], ["-w"], ["--watch", "--json"], ["--timeout", "0.5"], ["--timeout=3"],
    ["--json", "--json"], ["--watch", "--count", "3", "--interval", "0.2"],
    ["--count=1", "-w", "--interval=10"], ["--timeout", "1", "--timeout", "0.25"],
    ["--interval", "02.50", "--watch"],
]
# Command lines it leaves to typer: help, errors, and valid but unusual spellings.
TYPER_ONLY = [
    ["--help"], ["-h"], ["--count", "2"], ["--interval", "0.1"], ["--timeout", "0"],
    ["--timeout", "abc"], ["--timeout"], ["--bogus"], ["extra"], ["--count", "0", "-w"],
    ["--count", "1.5", "-w"], ["--timeout", "1e1"], ["--timeout", "-1"], ["-wh"],
    ["--", "--json"], ["--timeout", "\u0663"], ["--interval", "--json"],
]


def typer_options(args: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, Options | None]:
    """What the typer command passes to `execute` for `args` (and its exit code)."""
    seen: list[Options] = []

    def record(options: Options) -> int:
        seen.append(options)
        return 0

    monkeypatch.setattr(health_cli, "execute", record)
    app = typer.Typer(rich_markup_mode=None, add_completion=False)
    health_cli.register(app)
    result = CliRunner().invoke(app, args)
    return result.exit_code, (seen[0] if seen else None)


@pytest.mark.parametrize("args", FAST, ids=" ".join)
def test_the_fast_path_reads_a_command_line_as_typer_does(
        args: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    fast = parse_fast(args)
    assert fast is not None
    code, via_typer = typer_options(args, monkeypatch)
    assert (code, fast) == (0, via_typer)


@pytest.mark.parametrize("args", TYPER_ONLY, ids=" ".join)
def test_the_fast_path_leaves_help_errors_and_odd_spellings_to_typer(args: list[str]) -> None:
    assert parse_fast(args) is None


def test_the_fast_path_knows_every_option_of_the_typer_command() -> None:
    command = load_command("health")
    declared = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    assert declared - {"--help", "-h"} == set(health_cli.FLAGS) | set(health_cli.VALUED)
    defaults = {param.name: param.default for param in command.params if param.name != "help"}
    assert Options(**defaults) == Options()


def modules_loaded_by(args: list[str], home: Path) -> set[str]:
    """The modules `chaosctl ARGS` imports (run through the real entry point)."""
    code = ("import sys\nfrom chaosctl.cli.main import run\n"
            f"sys.argv = ['chaosctl', *{args!r}]\n"
            "try:\n    run()\nexcept SystemExit:\n    pass\n"
            "print('MODULES', *sorted(sys.modules))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAOSCTL_")}
    env.update(closed_ports_env(), CHAOSCTL_HOME=str(home))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60).stdout
    line = next(line for line in out.splitlines() if line.startswith("MODULES "))
    return set(line.split()[1:])


HEAVY = ("typer", "pydantic", "pydantic_settings", "rich", "httpx", "redis", "requests",
         "asyncio", "http.client", "prometheus_api_client", "yaml")


def test_health_json_imports_no_heavy_library(tmp_path: Path) -> None:
    loaded = modules_loaded_by(["health", "--json", "--timeout", "0.5"], tmp_path)
    assert "chaosctl.health" in loaded  # it did run the checks
    assert sorted(m for m in HEAVY if m in loaded) == []


def test_health_tables_import_rich_but_not_typer_or_pydantic(tmp_path: Path) -> None:
    loaded = modules_loaded_by(["health", "--timeout", "0.5"], tmp_path)
    assert "rich" in loaded
    assert sorted(m for m in HEAVY if m in loaded and m != "rich") == []

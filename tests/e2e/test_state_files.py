"""Bad state and config files: `stack` commands refuse with exit 2 and one line naming the file
and field, and start or change nothing. A fresh (never started) state dir, so no stack start."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import StackHandle, processes_using

BAD_STATES = {
    "huge-count": (b'{"replicas": {"gateway": 100000}}', "replicas.gateway"),
    "list": (b"[]", "JSON object"),
    "replicas-string": (b'{"replicas": "x"}', "replicas"),
    "fraction": (b'{"replicas": {"orders": 1.5}}', "replicas.orders"),
    "not-utf8": (b'{"replicas": {"orders": "\xff"}}', "not UTF-8"),
}

STATE_COMMANDS = (["stack", "up"], ["stack", "status"], ["stack", "start", "gateway"],
                  ["stack", "scale", "orders=2"], ["stack", "restart", "orders"])


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("chaosctl: error")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("case", sorted(BAD_STATES))
def test_bad_stack_json_is_refused_before_anything_starts(
    make_stack: Callable[[], StackHandle], case: str,
) -> None:
    raw, field = BAD_STATES[case]
    stack = make_stack()
    state = stack.home / "run" / "stack.json"
    state.parent.mkdir(parents=True)
    state.write_bytes(raw)
    # Every command reads stack.json through one loader: each bad file meets `up` and one
    # other command in turn, so every command meets a bad file (10 CLI starts, not 25).
    other = STATE_COMMANDS[1 + sorted(BAD_STATES).index(case) % (len(STATE_COMMANDS) - 1)]
    for args in (STATE_COMMANDS[0], other):
        result = stack.cli(*args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        line = error_line(result)
        assert str(state) in line and field in line, line
        assert "remove" in line and "chaosctl stack scale" in line, line
    assert not list((stack.home / "run").glob("*.pid"))
    assert processes_using(stack.home) == []
    assert state.read_bytes() == raw  # nothing rewrote it either


def test_non_utf8_config_file_is_exit_2_naming_it(
    make_stack: Callable[[], StackHandle], tmp_path: Path,
) -> None:
    stack = make_stack()
    config = tmp_path / "config.toml"  # not in the home, where `down` would read it too
    config.write_bytes(b"gateway_port = 8000\n# caf\xe9\n")
    env = {**stack.env, "CHAOSCTL_CONFIG": str(config)}
    for args in (["stack", "up"], ["stack", "status"], ["health"]):
        result = stack.cli(*args, env=env)
        assert result.returncode == 2, (args, result.stderr)
        line = error_line(result)
        assert str(config) in line and "UTF-8" in line, line
    assert processes_using(stack.home) == []


def test_bad_config_value_names_the_field(make_stack: Callable[[], StackHandle],
                                          tmp_path: Path) -> None:
    stack = make_stack()
    config = tmp_path / "config.toml"
    config.write_text('start_timeout = "soon"\n')
    result = stack.cli("stack", "status", env={**stack.env, "CHAOSCTL_CONFIG": str(config)})
    assert result.returncode == 2
    line = error_line(result)
    assert str(config) in line and "start_timeout" in line, line

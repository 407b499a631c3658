"""Bad situations `stack up` must refuse with exit 2 and one clear line, starting nothing.

These use a fresh (never started) state directory, so they cost no stack start.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable

import pytest

from chaosctl.runtime.procs import proc_starttime
from tests.e2e.conftest import StackHandle


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("chaosctl: error")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def assert_nothing_started(stack: StackHandle) -> None:
    assert not list((stack.home / "run").glob("*.pid"))


def test_port_in_use_names_port_and_owner(make_stack: Callable[[], StackHandle]) -> None:
    stack = make_stack()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", stack.settings.gateway_port))
        squatter.listen()
        result = stack.cli("stack", "up")
    assert result.returncode == 2
    line = error_line(result)
    assert f"port {stack.settings.gateway_port}" in line and "gateway" in line
    assert f"pid {os.getpid()}" in line
    assert_nothing_started(stack)


@pytest.mark.parametrize("kind", ["gone", "not-ours"])
def test_stale_pid_file_is_removed_and_reported(
    make_stack: Callable[[], StackHandle], kind: str
) -> None:
    stack = make_stack()
    if kind == "gone":
        proc = subprocess.Popen([sys.executable, "-c", "pass"])
        proc.wait()
        pid, start = proc.pid, None
    else:  # a live process that is not the one the file describes (a reused PID)
        pid, start = os.getpid(), proc_starttime(os.getpid())
    run = stack.home / "run"
    run.mkdir(parents=True)
    pidfile = run / "orders.0.pid"
    pidfile.write_text(json.dumps({
        "name": "orders", "replica": 0, "pid": pid, "port": stack.settings.orders_port,
        "cmdline": [sys.executable, "-m", "shop.serve", "orders"], "starttime": start,
        "log": str(stack.home / "logs" / "orders.0.log"),
    }))
    result = stack.cli("stack", "up")
    assert result.returncode == 2
    line = error_line(result)
    assert "stale pid file" in line and "orders.0" in line and str(pid) in line
    assert not pidfile.exists()
    assert_nothing_started(stack)


def test_missing_binary_says_how_to_install(
    make_stack: Callable[[], StackHandle], tmp_path
) -> None:
    stack = make_stack()
    env = {**stack.env, "PATH": str(tmp_path)}  # an empty directory: no redis-server
    result = stack.cli("stack", "up", env=env)
    assert result.returncode == 2
    line = error_line(result)
    assert "redis-server not found" in line and "apt-get install redis-server" in line
    assert_nothing_started(stack)


@pytest.mark.parametrize("args", [
    ["kill", "nosuch"], ["pause", "nosuch"], ["logs", "nosuch"], ["restart", "nosuch"],
    ["scale", "nosuch=2"], ["start", "nosuch"],
])
def test_unknown_service_lists_valid_names(
    make_stack: Callable[[], StackHandle], args: list[str]
) -> None:
    stack = make_stack()
    result = stack.cli("stack", *args)
    assert result.returncode == 2
    line = error_line(result)
    assert "unknown service 'nosuch'" in line and "gateway" in line and "redis" in line


def test_bad_scale_values_exit_2(make_stack: Callable[[], StackHandle]) -> None:
    stack = make_stack()
    for spec in ("orders", "orders=x", "orders=0", "orders=99", "redis=2"):
        result = stack.cli("stack", "scale", spec)
        assert result.returncode == 2, (spec, result.stderr)
        error_line(result)

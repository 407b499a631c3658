"""A stack of its own: up, a second up, down, and nothing left behind."""

from __future__ import annotations

import re
from collections.abc import Callable

from tests.e2e.conftest import StackHandle, processes_using


def test_up_then_down_leaves_no_process(make_stack: Callable[[], StackHandle]) -> None:
    stack = make_stack()
    first = stack.cli("stack", "up")
    assert first.returncode == 0, first.stderr
    records = stack.records()
    # Progress: one runtime "ready" event per process, printed on stderr with its pid.
    for r in records:
        assert re.search(rf"ready\s+{re.escape(r.label)}\s+pid {r.pid}\b", first.stderr), \
            first.stderr
    assert sorted(r.label for r in records) == sorted(
        f"{n}.0" for n in ("redis", "prometheus", "gateway", "orders", "payments", "inventory",
                           "notifications"))
    assert all(r.is_ours() for r in records)
    token = stack.home / "admin_token"
    assert token.stat().st_mode & 0o777 == 0o600
    token_value = token.read_text()

    again = stack.cli("stack", "up")
    assert again.returncode == 0, again.stderr
    assert {r.label: r.pid for r in stack.records()} == {r.label: r.pid for r in records}
    assert token.read_text() == token_value  # kept across ups

    down = stack.cli("stack", "down")
    assert down.returncode == 0, down.stderr
    assert not [r.label for r in records if r.is_ours()]
    assert processes_using(stack.home) == []
    assert not list((stack.home / "run").glob("*.pid"))
    assert (stack.home / "data").is_dir()  # kept without --purge

    purge = stack.cli("stack", "down", "--purge")
    assert purge.returncode == 0, purge.stderr
    assert not (stack.home / "data").exists()
    assert not (stack.home / "prometheus" / "data").exists()


def test_start_failure_names_the_process_and_stops_what_it_started(
    make_stack: Callable[[], StackHandle],
) -> None:
    stack = make_stack()
    # Too little time for anything to get ready: `up` must give up and clean up after itself.
    env = {**stack.env, "CHAOSCTL_START_TIMEOUT": "0.001"}
    result = stack.cli("stack", "up", env=env)
    assert result.returncode == 1
    assert "did not become ready within 0.001s" in result.stderr
    assert "redis.0" in result.stderr and "last lines of" in result.stderr
    assert not list((stack.home / "run").glob("*.pid"))
    assert processes_using(stack.home) == []
    logs = stack.home / "logs" / "redis.0.log"
    assert logs.is_file()


def test_a_service_that_crashes_on_start_is_named_with_its_log_tail(
    make_stack: Callable[[], StackHandle],
) -> None:
    import re

    stack = make_stack()
    # A real start-up crash: no SQLAlchemy dialect called "bogus".
    env = {**stack.env, "CHAOSCTL_DATABASE_URL": "bogus://nowhere"}
    result = stack.cli("stack", "up", env=env)
    assert result.returncode == 1
    assert re.search(r"chaosctl: error: (gateway|orders|payments|inventory|notifications)\.0 "
                     r"exited while starting \(exit code 1\)", result.stderr), result.stderr
    assert "bogus" in result.stderr  # the log tail made it into the message
    assert not list((stack.home / "run").glob("*.pid"))
    assert processes_using(stack.home) == []

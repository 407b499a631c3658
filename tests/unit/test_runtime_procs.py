"""Process bookkeeping against real processes and sockets: identity, signals, ports, logs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chaosctl.config import Settings
from chaosctl.errors import ConfigError
from chaosctl.resources import playbooks_dir, stack_dir
from chaosctl.runtime import get_backend
from chaosctl.runtime.logfiles import read_logs
from chaosctl.runtime.procs import (
    PidRecord,
    RunDir,
    port_is_free,
    port_owner,
    proc_starttime,
    proc_state,
    send,
    terminate,
)

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


@pytest.fixture
def sleeper() -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(SLEEPER, start_new_session=True)
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def record_for(proc: subprocess.Popen[bytes], cmdline: list[str] = SLEEPER) -> PidRecord:
    return PidRecord("orders", 0, proc.pid, 1, cmdline, proc_starttime(proc.pid), "/dev/null")


def test_record_of_a_live_process_is_ours(sleeper: subprocess.Popen[bytes]) -> None:
    assert record_for(sleeper).is_ours()


def test_reused_pid_with_other_cmdline_or_starttime_is_not_ours_and_not_signalled(
    sleeper: subprocess.Popen[bytes],
) -> None:
    other_cmd = record_for(sleeper, [sys.executable, "-m", "shop.serve", "orders"])
    other_start = record_for(sleeper)
    other_start.starttime = (other_start.starttime or 0) + 1
    for rec in (other_cmd, other_start):
        assert not rec.is_ours()
        assert not send(rec, signal.SIGKILL)
    assert sleeper.poll() is None  # untouched


def test_terminate_stops_the_process_and_a_dead_record_is_stale(
    sleeper: subprocess.Popen[bytes],
) -> None:
    rec = record_for(sleeper)
    stopped = terminate([rec], timeout=5)
    assert [s.how for s in stopped] == ["terminated"]
    # terminate() reaps its own children, so only check that the process is gone.
    sleeper.wait(timeout=5)
    assert proc_state(sleeper.pid) is None
    assert not rec.is_ours()
    assert [s.how for s in terminate([rec])] == ["stale"]


def test_paused_process_is_seen_paused_and_still_terminates(
    sleeper: subprocess.Popen[bytes],
) -> None:
    rec = record_for(sleeper)
    assert send(rec, signal.SIGSTOP)
    from tests.support import wait_for

    wait_for(rec.is_paused, timeout=5, what="state T")
    assert [s.how for s in terminate([rec], timeout=5)] == ["terminated"]


def test_run_dir_round_trip_and_corrupt_files(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    rec = PidRecord("redis", 0, os.getpid(), 6379, ["x"], None, "log")
    run.write(rec)
    (tmp_path / "run" / "broken.0.pid").write_text("{not json")
    good, bad = run.records()
    assert [g.label for g in good] == ["redis.0"] and [b.name for b in bad] == ["broken.0.pid"]
    state = run.load_state()
    assert state == {"replicas": {}, "killed": []}
    state["replicas"]["orders"] = 3
    run.save_state(state)
    assert run.load_state()["replicas"] == {"orders": 3}


def test_port_probe_names_the_owner() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert not port_is_free("127.0.0.1", port)
        owner = port_owner(port)
        assert owner is not None and owner[0] == os.getpid()
    assert port_is_free("127.0.0.1", port)
    assert port_owner(port) is None


def test_read_logs_tail_and_prefix(tmp_path: Path) -> None:
    a, b = tmp_path / "orders.0.log", tmp_path / "orders.1.log"
    a.write_text("one\ntwo\nthree\n")
    b.write_text("x\n")
    assert list(read_logs([a], tail=2, follow=False)) == ["two", "three"]
    assert list(read_logs([a, b], tail=1, follow=False)) == ["[orders.0] three", "[orders.1] x"]


def test_factory_rejects_unknown_backend_listing_valid_names(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="valid backends: docker, kubernetes, local"):
        get_backend(Settings(home=tmp_path, backend="nomad"))
    assert get_backend(Settings(home=tmp_path)).name == "local"


def test_resources_point_at_the_bundled_stack() -> None:
    assert (stack_dir() / "prometheus" / "rules" / "recording.yml").is_file()
    assert (stack_dir() / "shop").is_dir()
    assert playbooks_dir().name == "playbooks"


def test_own_unreaped_child_is_trusted_even_before_its_cmdline_settles(
    sleeper: subprocess.Popen[bytes],
) -> None:
    # Right after fork/exec /proc may not show the final command line yet (redis-server even
    # blanks it while starting); a still-unreaped child of ours cannot be a reused PID.
    rec = record_for(sleeper, ["not", "what", "proc", "shows"])
    assert not rec.is_ours()
    stopped = terminate([rec], timeout=5, trusted=frozenset({sleeper.pid}))
    assert [s.how for s in stopped] == ["terminated"]
    sleeper.wait(timeout=5)
    assert proc_state(sleeper.pid) is None


def test_ready_progress_is_a_runtime_event_and_a_broken_listener_does_not_stop_it() -> None:
    from chaosctl.runtime.base import ProcessStatus, notify_ready

    seen: list[Any] = []

    def broken(event: Any) -> None:
        raise OSError("stderr closed")

    status = ProcessStatus("orders", 1, 4242, 8001, True, False, "ok")
    notify_ready(broken, status)  # logged, not raised: a start must not fail on its printer
    notify_ready(seen.append, status)
    notify_ready(None, status)
    assert [(e.kind, e.source, e.subject, e.data["pid"]) for e in seen] == [
        ("ready", "runtime", "orders.1", 4242)]

"""Worker records: identity checked against /proc (real processes), stop by PID only."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from chaosctl.runtime.procs import proc_cmdline, proc_starttime, proc_state
from chaosctl.runtime.workers import WorkerRecord, WorkerStore


def _record(proc: subprocess.Popen, worker_id: str = "overload-test") -> WorkerRecord:
    return WorkerRecord(worker_id, "overload", "overload", "gateway", proc.pid,
                        proc_starttime(proc.pid), proc_cmdline(proc.pid) or [], time.time(),
                        time.time() + 60, {"rps": 1.0})


def _sleeper() -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                            start_new_session=True)
    deadline = time.monotonic() + 10
    while proc_cmdline(proc.pid) != [sys.executable, "-c", "import time; time.sleep(60)"]:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return proc


def test_record_round_trip_and_stop(tmp_path: Path) -> None:
    store = WorkerStore(tmp_path)
    proc = _sleeper()
    try:
        rec = _record(proc)
        store.write(rec)
        assert store.get(rec.id) == rec
        assert [r.id for r in store.live()] == [rec.id]
        assert store.stop(rec, grace_s=5) == "stopped"
        proc.wait(5)
        assert proc.returncode is not None
        assert store.records() == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_reused_pid_is_never_signalled(tmp_path: Path) -> None:
    store = WorkerStore(tmp_path)
    proc = _sleeper()
    try:
        rec = _record(proc)
        rec.cmdline = ["something", "else"]  # same pid, different process: not ours
        store.write(rec)
        assert not rec.is_alive()
        assert store.stop(rec, grace_s=1) == "gone"
        assert proc.poll() is None and proc_state(proc.pid) not in (None, "Z")
        rec2 = _record(proc, "overload-2")
        rec2.starttime = (rec2.starttime or 0) + 1  # wrong start time: also not ours
        assert not rec2.is_alive()
    finally:
        proc.kill()
        proc.wait()


def test_dead_and_corrupt_records_are_pruned(tmp_path: Path) -> None:
    store = WorkerStore(tmp_path)
    proc = _sleeper()
    rec = _record(proc)
    proc.kill()
    proc.wait()
    store.write(rec)
    (store.path / "broken.json").write_text("{not json")
    assert store.live() == []
    assert list(store.path.glob("*.json")) == []

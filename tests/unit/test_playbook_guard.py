"""Guardrails: the remediation lock (real fcntl locks, also across processes) and the cap."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chaosctl.errors import RemediationLockedError
from chaosctl.playbook.guard import ActionCapError, RemediationGuard
from tests.support import wait_for


def test_second_lock_is_refused_naming_the_holder(tmp_path: Path) -> None:
    first, second = RemediationGuard(tmp_path), RemediationGuard(tmp_path)
    with first.lock("payment-degradation"):
        with pytest.raises(RemediationLockedError) as info:
            with second.lock("outbox-backlog"):
                pass
        assert "another remediation is running" in str(info.value)
        assert "playbook payment-degradation" in str(info.value)
        assert "not starting outbox-backlog" in str(info.value)
    with second.lock("outbox-backlog"):  # released: now it can be taken
        pass


def test_lock_held_by_another_process(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from chaosctl.playbook.guard import "
        "RemediationGuard\n"
        f"g = RemediationGuard(Path({str(tmp_path)!r}))\n"
        "with g.lock('service-down'):\n"
        "    print('locked', flush=True); sys.stdin.read()\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(RemediationLockedError, match=f"pid {holder.pid}"):
            with RemediationGuard(tmp_path).lock("service-down"):
                pass
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=10)

    def free() -> bool:
        try:
            with RemediationGuard(tmp_path).lock("service-down"):
                return True
        except RemediationLockedError:
            return False

    wait_for(free, timeout=10, what="lock released after the holder exits")


def test_cap_refuses_after_n_actions(tmp_path: Path) -> None:
    guard = RemediationGuard(tmp_path, cap=3, window_s=600)
    with guard.lock("retry-storm"):
        for _ in range(3):
            guard.consume("retry-storm", "restart")
        with pytest.raises(ActionCapError, match="action cap reached for retry-storm: 3 actions"):
            guard.consume("retry-storm", "restart")
        guard.consume("service-down", "restore_services")  # other incidents have their own cap
    assert guard.used("retry-storm") == 3
    assert guard.remaining("service-down") == 2


def test_cap_counts_only_the_window(tmp_path: Path) -> None:
    guard = RemediationGuard(tmp_path, cap=2, window_s=60)
    old = time.time() - 120
    guard.counts_path.parent.mkdir(parents=True, exist_ok=True)
    guard.counts_path.write_text(json.dumps({"outbox-backlog": [old, old, old]}))
    assert guard.used("outbox-backlog") == 0
    with guard.lock("outbox-backlog"):
        guard.consume("outbox-backlog", "restart")
        guard.consume("outbox-backlog", "restart")
        with pytest.raises(ActionCapError):
            guard.consume("outbox-backlog", "restart")
    # Old entries are dropped when the file is rewritten.
    assert len(json.loads(guard.counts_path.read_text())["outbox-backlog"]) == 2


def test_cap_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAOSCTL_REMEDIATION_CAP", "1")
    monkeypatch.setenv("CHAOSCTL_REMEDIATION_WINDOW_S", "30")
    guard = RemediationGuard(tmp_path)
    assert (guard.cap, guard.window_s) == (1, 30.0)
    monkeypatch.setenv("CHAOSCTL_REMEDIATION_CAP", "many")
    with pytest.raises(Exception, match="CHAOSCTL_REMEDIATION_CAP='many' is not a number"):
        RemediationGuard(tmp_path)


def test_consume_needs_the_lock(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="needs the remediation lock"):
        RemediationGuard(tmp_path).consume("x", "restart")

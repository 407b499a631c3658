"""Starting, checking and stopping the kubernetes backend's forwarder process
(chaosctl/runtime/k8s_forward.py), recorded like the local backend's processes: a pid file
with the command line and start time in run/k8s/, so a reused PID is never signalled."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

from chaosctl.config import Settings
from chaosctl.errors import PortInUseError, StackStartError
from chaosctl.runtime.base import ALL_PROCESSES, StoppedProcess
from chaosctl.runtime.logfiles import log_tail
from chaosctl.runtime.procs import (
    PidRecord,
    RunDir,
    launch,
    port_is_free,
    port_owner,
    proc_starttime,
    terminate,
)

NAME = "k8s-forward"


class Forwarder:
    def __init__(self, settings: Settings, home: Path) -> None:
        self.settings = settings
        self.run = RunDir(home / "run" / "k8s")
        self.log = home / "logs" / f"{NAME}.log"

    def record(self) -> PidRecord | None:
        records, _ = self.run.records()
        return next((r for r in records if r.name == NAME and r.is_ours()), None)

    def _all_listening(self) -> bool:
        s = self.settings
        for name in ALL_PROCESSES:
            try:
                with socket.create_connection((s.host, s.port(name)), timeout=0.5):
                    pass
            except OSError:
                return False
        return True

    def ensure(self) -> bool:
        """Start the forwarder unless ours already runs; True when this call started it."""
        if self.record() is not None:
            return False
        self.run.remove(NAME, 0)
        s = self.settings
        for name in ALL_PROCESSES:
            if not port_is_free(s.host, s.port(name)):
                owner = port_owner(s.port(name))
                who = f" by pid {owner[0]} ({owner[1][:80]})" if owner else ""
                raise PortInUseError(
                    f"port {s.port(name)} for {name} is already in use{who}",
                    hint=f"stop that process or set CHAOSCTL_{name.upper()}_PORT")
        cmd = [sys.executable, "-m", "chaosctl.runtime.k8s_forward", s.to_json()]
        env = {k: v for k, v in os.environ.items()}
        proc = launch(cmd, env, self.log, banner=f"--- {NAME} started {time.ctime()}")
        rec = PidRecord(NAME, 0, proc.pid, 0, cmd, proc_starttime(proc.pid), str(self.log))
        self.run.write(rec)
        deadline = time.monotonic() + 30
        while not self._all_listening():
            if proc.poll() is not None or time.monotonic() > deadline:
                if proc.poll() is None:
                    terminate([rec], timeout=2, trusted=frozenset({proc.pid}))
                self.run.remove(NAME, 0)
                raise StackStartError(
                    f"the port forwarder did not start; its log {self.log} ends:\n"
                    f"{log_tail(self.log)}")
            time.sleep(0.1)
        return True

    def stop(self) -> list[StoppedProcess]:
        records, _ = self.run.records()
        mine = [r for r in records if r.name == NAME]
        stopped = terminate(mine, timeout=5) if mine else []
        for r in mine:
            self.run.remove(r.name, r.replica)
        return stopped

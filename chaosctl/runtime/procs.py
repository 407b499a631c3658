"""Process bookkeeping for the local backend: pid files, identity checks, signals, ports,
and how a shop service is launched (its command line and environment), shared with the
integration tests' stack (tests/integration/shopstack.py) so both start services alike.

A pid file alone is not trusted: PIDs are reused. Each record keeps the exact command line and
the kernel start time of the process, and nothing is signalled unless /proc still shows both.
Linux only (reads /proc), which is what the local backend targets.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chaosctl.runtime.base import StoppedProcess
from chaosctl.runtime.state import load_state

PROC = Path("/proc")


# -- launching ---------------------------------------------------------------------------------
def service_command(name: str, host: str, port: int) -> list[str]:
    """The command line of one shop service (run with PYTHONPATH at the stack directory)."""
    return [sys.executable, "-m", "shop.serve", name, "--port", str(port), "--host", host]


def shop_env(base: Mapping[str, str], *, stack: Path, urls: Mapping[str, str], redis_url: str,
             data_dir: Path, admin_token: str, metrics_dir: Path, replica: int = 0,
             database_url: str | None = None) -> dict[str, str]:
    """`base` plus what a shop service reads (stack/README.md): where its peers, Redis and
    its data are, the admin token, its metrics directory and replica number."""
    env = dict(base)
    env.update({
        "PYTHONPATH": str(stack),
        "SHOP_REDIS_URL": redis_url,
        "SHOP_DATA_DIR": str(data_dir),
        "CHAOSCTL_ADMIN_TOKEN": admin_token,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "SHOP_REPLICA": str(replica),
        **{f"SHOP_{svc.upper()}_URL": url for svc, url in urls.items()},
    })
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def launch(cmd: list[str], env: Mapping[str, str], log: Path, *, cwd: Path | None = None,
           banner: str | None = None, user: str | None = None) -> subprocess.Popen[bytes]:
    """Start `cmd` in its own session (so a signal to its group reaches what it spawns),
    stdout and stderr appended to `log`; `user` drops privileges (postgres refuses root)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        if banner:
            out.write(f"{banner}\n".encode())
            out.flush()
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, env=dict(env), cwd=cwd,
                                start_new_session=True, user=user, group=user,
                                extra_groups=[] if user else None)


# -- /proc readers ----------------------------------------------------------------------------
def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    return raw[raw.rindex(")") + 2 :].split()


def proc_state(pid: int) -> str | None:
    """Single-letter kernel state (R, S, T, Z, ...), or None when the process does not exist."""
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def proc_starttime(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None  # field 22 of stat, in clock ticks since boot


def proc_cmdline(pid: int) -> list[str] | None:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    if not raw:  # kernel threads and zombies have an empty command line
        return None
    # Arguments are NUL-terminated; keep empty ones (redis gets `--save ""`).
    return [part.decode(errors="replace") for part in raw.removesuffix(b"\0").split(b"\0")]


# -- records -----------------------------------------------------------------------------------
@dataclass
class PidRecord:
    """What `run/NAME.REPLICA.pid` holds (JSON) about one process we started."""

    name: str
    replica: int
    pid: int
    port: int
    cmdline: list[str]
    starttime: int | None
    log: str
    started_at: float = field(default_factory=time.time)

    @property
    def label(self) -> str:
        return f"{self.name}.{self.replica}"

    def is_ours(self) -> bool:
        """True while this PID is still the very process we started (not reused, not a zombie)."""
        return is_same_process(self.pid, self.starttime, self.cmdline)

    def is_paused(self) -> bool:
        return proc_state(self.pid) == "T"


class RunDir:
    """`run/`: one pid file per process plus `stack.json` (replica counts, killed services)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def pidfile(self, name: str, replica: int) -> Path:
        return self.path / f"{name}.{replica}.pid"

    def write(self, record: PidRecord) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.pidfile(record.name, record.replica), asdict(record))

    def remove(self, name: str, replica: int) -> None:
        self.pidfile(name, replica).unlink(missing_ok=True)

    def records(self) -> tuple[list[PidRecord], list[Path]]:
        """All readable pid records, plus the paths of unreadable (corrupt) pid files."""
        good: list[PidRecord] = []
        bad: list[Path] = []
        for path in sorted(self.path.glob("*.pid")):
            try:
                good.append(PidRecord(**json.loads(path.read_text())))
            except (OSError, ValueError, TypeError):
                bad.append(path)
        return good, bad

    def load_state(self) -> dict[str, Any]:
        """Replica counts and killed services, validated (StateFileError, exit 2, if bad)."""
        return load_state(self.path / "stack.json")

    def save_state(self, data: dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.path / "stack.json", data)


def _atomic_write(path: Path, data: dict[str, Any]) -> None:
    # Write-then-rename so a concurrent reader never sees half a file.
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


def is_same_process(pid: int, starttime: int | None, cmdline: list[str]) -> bool:
    """Is `pid` still the process recorded with this start time and command line?

    Checked before every signal, so a PID the kernel reused for someone else is never hit.
    """
    state = proc_state(pid)
    if state is None or state in ("Z", "X"):
        return False
    if starttime is not None and proc_starttime(pid) != starttime:
        return False
    current = proc_cmdline(pid)
    # redis-server blanks its argv for a moment while it initialises; with the start time
    # matching, an empty command line is that moment, not another process.
    if current is None and starttime is not None:
        return True
    return current == cmdline


def signal_group(pid: int, sig: int) -> bool:
    """Signal a process started in its own session, with its group; False if it is gone."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


# -- signals -----------------------------------------------------------------------------------
def _alive(record: PidRecord, trusted: frozenset[int]) -> bool:
    if record.pid in trusted:  # our unreaped child: the PID cannot have been reused
        return proc_state(record.pid) not in (None, "Z", "X")
    return record.is_ours()


def send(record: PidRecord, sig: int, trusted: frozenset[int] = frozenset()) -> bool:
    """Signal the process (and its session group) only if it is still ours. True if sent.

    `trusted` lists PIDs of our own not-yet-reaped children: their identity is certain even in
    the instant after fork when /proc still shows the parent's command line.
    """
    if not _alive(record, trusted):
        return False
    # Started with start_new_session=True, so pgid == pid and children go with it.
    return signal_group(record.pid, sig)


def _reap(pid: int) -> None:
    # When the process is our own child (started in this Python process) collect its exit
    # status, otherwise it lingers as a zombie until we exit.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def wait_gone(records: list[PidRecord], timeout: float,
              trusted: frozenset[int] = frozenset()) -> list[PidRecord]:
    """Wait until none of `records` is alive; return those still alive at the deadline."""
    deadline = time.monotonic() + timeout
    pending = list(records)
    while pending:
        for rec in pending:
            _reap(rec.pid)
        pending = [r for r in pending if _alive(r, trusted)]
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    return pending


def terminate(records: list[PidRecord], timeout: float = 10.0,
              trusted: frozenset[int] = frozenset()) -> list[StoppedProcess]:
    """SIGTERM (then SIGCONT, so a paused process can act on it); SIGKILL after `timeout`."""
    stopped: dict[str, StoppedProcess] = {}
    live: list[PidRecord] = []
    for rec in records:
        if send(rec, signal.SIGTERM, trusted):
            send(rec, signal.SIGCONT, trusted)
            live.append(rec)
            stopped[rec.label] = StoppedProcess(rec.name, rec.replica, rec.pid, "terminated")
        else:
            stopped[rec.label] = StoppedProcess(rec.name, rec.replica, rec.pid, "stale")
    for rec in wait_gone(live, timeout, trusted):
        send(rec, signal.SIGKILL, trusted)
        stopped[rec.label].how = "killed"
    wait_gone(live, 5.0, trusted)
    return [stopped[r.label] for r in records]


def kill_now(records: list[PidRecord]) -> list[StoppedProcess]:
    """SIGKILL at once (the chaos `kill`), then wait until the kernel has removed them."""
    result = []
    for rec in records:
        how = "killed" if send(rec, signal.SIGKILL) else "stale"
        result.append(StoppedProcess(rec.name, rec.replica, rec.pid, how))
    wait_gone(records, 5.0)
    return result


# -- ports -------------------------------------------------------------------------------------
def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR: a port in TIME_WAIT is free for a new listener, do not report it taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _listen_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            local, state, inode = cols[1], cols[3], cols[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A = LISTEN
                inodes.add(inode)
    return inodes


def _pid_has_socket(pid: int, inodes: set[str]) -> bool:
    targets = {f"socket:[{i}]" for i in inodes}
    try:
        fds = list((PROC / str(pid) / "fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(fd) in targets:
                return True
    return False


def pid_listens_on(pid: int, port: int) -> bool:
    """True when process `pid` holds a listening socket on `port` (a replica is serving)."""
    inodes = _listen_inodes(port)
    return bool(inodes) and _pid_has_socket(pid, inodes)


def port_owner(port: int) -> tuple[int, str] | None:
    """(pid, command line) of a process listening on `port`, when /proc lets us see it."""
    inodes = _listen_inodes(port)
    if not inodes:
        return None
    for entry in PROC.iterdir():
        if entry.name.isdigit() and _pid_has_socket(int(entry.name), inodes):
            cmd = proc_cmdline(int(entry.name)) or ["?"]
            return int(entry.name), " ".join(cmd)
    return None

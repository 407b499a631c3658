"""The local backend: redis-server, prometheus and the five services as plain processes.

Layout under settings.home: admin_token (0600), data/ (service data), redis/, prometheus/
(rendered config + data/), metrics/NAME/ (PROMETHEUS_MULTIPROC_DIR), logs/NAME.REPLICA.log,
run/ (pid files + stack.json). Every process starts in its own session so that a signal to its
group reaches anything it spawned, and `down` stops exactly what the pid files name.
"""

from __future__ import annotations

import fcntl
import functools
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from chaosctl.config import Settings
from chaosctl.domain import SERVICES
from chaosctl.errors import (
    InvalidInputError,
    MissingBinaryError,
    PortInUseError,
    StackNotRunningError,
    StackStartError,
    StaleStateError,
)
from chaosctl.resources import stack_dir
from chaosctl.runtime import probes
from chaosctl.runtime.base import (
    ALL_PROCESSES,
    HEALTH_KILLED,
    HEALTH_PAUSED,
    HEALTH_STOPPED,
    HEALTH_UNREACHABLE,
    Backend,
    ProcessStatus,
    ReadyCallback,
    StackStatus,
    StoppedProcess,
    notify_ready,
)
from chaosctl.runtime.logfiles import log_tail, read_logs
from chaosctl.runtime.procs import (
    PidRecord,
    RunDir,
    kill_now,
    launch,
    pid_listens_on,
    port_is_free,
    port_owner,
    proc_starttime,
    send,
    service_command,
    shop_env,
    terminate,
)
from chaosctl.runtime.prometheus_config import write_prometheus_config
from chaosctl.runtime.workers import WorkerStore

T = TypeVar("T")

INSTALL_HINTS = {
    "redis-server": "sudo apt-get install redis-server (macOS: brew install redis)",
    "prometheus": "sudo apt-get install prometheus (macOS: brew install prometheus)",
}


def _exclusive(method: Callable[..., T]) -> Callable[..., T]:
    """Serialise operations that start or stop processes across chaosctl processes (two
    `up`s, a reverter's `start` racing a playbook's): without it both could launch the same
    replica and the second pid file would hide the first process."""

    @functools.wraps(method)
    def wrapper(self: LocalBackend, *args: Any, **kwargs: Any) -> T:
        if self._lock_depth:  # already held by this backend (one operation calling another)
            return method(self, *args, **kwargs)
        self.run.path.mkdir(parents=True, exist_ok=True)
        path = self.run.path / "backend.lock"
        with open(path, "a") as handle:
            deadline = time.monotonic() + 2 * self.settings.start_timeout
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise StackStartError(
                            f"another chaosctl is still changing the stack (lock {path})",
                            hint="wait for it to finish, then try again") from None
                    time.sleep(0.1)
            self._lock_depth += 1
            try:
                return method(self, *args, **kwargs)
            finally:
                self._lock_depth -= 1  # the flock goes with the file handle
    return wrapper


class LocalBackend(Backend):
    """`service_env`: extra SHOP_* variables for the five services this backend starts or
    restarts (`chaosctl experiment` switches the resilience patterns with them). It lives in
    this object only, never in run/stack.json: any other chaosctl (a reverter, `stack
    restart`) starts services in the normal configuration, which is the safe default."""

    name = "local"

    def __init__(self, settings: Settings, service_env: dict[str, str] | None = None) -> None:
        bad = sorted(k for k in (service_env or {}) if not k.startswith("SHOP_"))
        if bad:
            raise InvalidInputError(f"service_env may only set SHOP_* variables, not "
                                    f"{', '.join(bad)}")
        self.service_env = dict(service_env or {})
        self.settings = settings
        self.home = Path(settings.home).expanduser()
        self.run = RunDir(self.home / "run")
        self.logs_dir = self.home / "logs"
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._lock_depth = 0

    # -- public operations ---------------------------------------------------------------------
    @_exclusive
    def up(self, on_ready: ReadyCallback | None = None) -> StackStatus:
        self._check_binaries()
        state = self.run.load_state()  # validated before anything is touched
        stale = self._remove_stale()
        if stale:
            raise StaleStateError(
                f"removed stale pid file(s) in {self.run.path}: {'; '.join(stale)}",
                hint="nothing was started; run `chaosctl stack up` again",
            )
        state["killed"] = []  # `up` means: everything the stack should have, running
        live = self._live()
        todo = [(n, r) for n, count in self._expected(state).items() for r in range(count)
                if f"{n}.{r}" not in live]
        if not todo:
            return self.status()
        self._check_ports({n for n, _ in todo} - {rec.name for rec in live.values()})
        self._prepare(fresh=not live)
        started = self._start_all(todo, on_ready)
        self.run.save_state(state)
        self._await_scrapes(time.time())
        status = self.status()
        status.started = [rec.label for rec in started]
        return status

    @_exclusive
    def down(self, purge: bool = False) -> list[StoppedProcess]:
        # Chaos workers first: a pending reverter would start a service again after `down`,
        # and a burst would keep hammering dead ports until its --for ran out.
        workers = WorkerStore(self.home)
        for worker in workers.live():
            workers.stop(worker)
        records, corrupt = self.run.records()
        # Services first, so they do not log a burst of Redis errors on the way out.
        records.sort(key=lambda r: r.name in ("redis", "prometheus"))
        stopped = terminate(records)
        for rec in records:
            self.run.remove(rec.name, rec.replica)
        for path in corrupt:
            path.unlink(missing_ok=True)
        (self.run.path / "stack.json").unlink(missing_ok=True)
        if purge:
            for sub in ("data", "redis", "metrics", "prometheus/data"):
                shutil.rmtree(self.home / sub, ignore_errors=True)
        return stopped

    def status(self) -> StackStatus:
        state = self.run.load_state()
        expected = self._expected(state)
        live = self._live()
        entries: list[ProcessStatus] = []
        for name, count in expected.items():
            replicas = sorted({r for r in range(count)} | {
                rec.replica for rec in live.values() if rec.name == name})
            for replica in replicas:
                rec = live.get(f"{name}.{replica}")
                if rec is None:
                    down = HEALTH_KILLED if name in state["killed"] else HEALTH_STOPPED
                    entries.append(ProcessStatus(name, replica, None, self.settings.port(name),
                                                 False, False, down))
                else:
                    entries.append(ProcessStatus(name, replica, rec.pid, rec.port, True,
                                                 rec.is_paused(), HEALTH_UNREACHABLE))
        self._fill_health(entries)
        return StackStatus(self.name, str(self.home), entries, expected)

    @_exclusive
    def restart(self, services: list[str], on_ready: ReadyCallback | None = None) -> StackStatus:
        names = list(dict.fromkeys(self._check_name(s) for s in services))
        if not names:
            raise InvalidInputError("name at least one service to restart",
                                    hint=f"valid names: {', '.join(ALL_PROCESSES)}")
        state = self.run.load_state()
        expected = self._expected(state)
        for name in names:
            self._stop(self._records_of(name))
        todo = [(n, r) for n in names for r in range(expected[n])]
        self._check_ports(set(names))
        state["killed"] = [k for k in state["killed"] if k not in names]
        self._prepare(fresh=False)
        self._start_all(todo, on_ready)
        self.run.save_state(state)
        self._await_scrapes(time.time())
        return self.status()

    @_exclusive
    def scale(self, service: str, replicas: int,
              on_ready: ReadyCallback | None = None) -> StackStatus:
        self._check_scale(service, replicas)
        state = self.run.load_state()
        self._require_running()
        current = self._records_of(service)
        self._stop([r for r in current if r.replica >= replicas])
        have = {r.replica for r in current}
        todo = [(service, r) for r in range(replicas) if r not in have]
        if todo and not (have & set(range(replicas))):
            self._check_ports({service})
        self._start_all(todo, on_ready)
        state["replicas"][service] = replicas
        state["killed"] = [k for k in state["killed"] if k != service]
        self.run.save_state(state)
        return self.status()

    @_exclusive
    def kill(self, service: str) -> list[StoppedProcess]:
        state = self.run.load_state()
        records = self._running_records(service)
        result = kill_now(records)
        for rec in records:
            self.run.remove(rec.name, rec.replica)
        state["killed"] = sorted(set(state["killed"]) | {service})
        self.run.save_state(state)
        return result

    @_exclusive
    def start(self, service: str, on_ready: ReadyCallback | None = None) -> StackStatus:
        name = self._check_name(service)
        state = self.run.load_state()
        self._remove_stale(only=name)  # a crashed replica's pid file is expected here
        have = {r.replica for r in self._records_of(name)}
        todo = [(name, r) for r in range(self._expected(state)[name]) if r not in have]
        if todo and not have:
            self._check_ports({name})
        self._prepare(fresh=False)
        self._start_all(todo, on_ready)
        state["killed"] = [k for k in state["killed"] if k != name]
        self.run.save_state(state)
        if todo:
            self._await_scrapes(time.time())
        return self.status()

    def pause(self, service: str) -> list[int]:
        return self._signal_all(service, signal.SIGSTOP, want_paused=True)

    def resume(self, service: str) -> list[int]:
        return self._signal_all(service, signal.SIGCONT, want_paused=False)

    def logs(self, service: str | None = None, tail: int = 50,
             follow: bool = False) -> Iterator[str]:
        names = [self._check_name(service)] if service else list(ALL_PROCESSES)
        files = [p for n in names for p in sorted(self.logs_dir.glob(f"{n}.*.log"))]
        if not files:
            raise StackNotRunningError(f"no logs for {service or 'the stack'} in {self.logs_dir}",
                                       hint="start the stack with `chaosctl stack up`")
        return read_logs(files, tail, follow)

    # -- starting ------------------------------------------------------------------------------
    def _command(self, name: str) -> list[str]:
        s, port = self.settings, self.settings.port(name)
        if name == "redis":
            # Redis holds idempotency records, and the contract is that a key never yields a
            # second order across any crash: so an append-only file fsynced before every
            # reply ("always"; measured ~7.7k SET/s vs ~37k with everysec on this machine,
            # far above what the shop writes), not "everysec", which may lose the last
            # second of records on SIGKILL. No RDB snapshots: the AOF is the one copy.
            # Expiry is logged as absolute times, so chaos keys keep their TTL on restart.
            return [shutil.which("redis-server") or "redis-server", "--bind", s.host,
                    "--port", str(port), "--save", "", "--appendonly", "yes",
                    "--appendfsync", "always",
                    "--dir", str(self.home / "redis"), "--daemonize", "no",
                    # Keep argv intact so /proc/PID/cmdline still matches our pid file.
                    "--set-proc-title", "no"]
        if name == "prometheus":
            return [shutil.which("prometheus") or "prometheus",
                    f"--config.file={self.home / 'prometheus' / 'prometheus.yml'}",
                    f"--storage.tsdb.path={self.home / 'prometheus' / 'data'}",
                    f"--web.listen-address={s.host}:{port}", "--web.enable-lifecycle"]
        return service_command(name, s.host, port)

    def _env(self, name: str, replica: int) -> dict[str, str]:
        if name not in SERVICES:
            return dict(os.environ)
        s = self.settings
        return shop_env(
            os.environ, stack=stack_dir(), urls={svc: s.url(svc) for svc in SERVICES},
            redis_url=s.redis_url, data_dir=self.home / "data",
            # The CLI sends settings.admin_token() (CHAOSCTL_ADMIN_TOKEN first): same here.
            admin_token=self._admin_token(),
            metrics_dir=self.home / "metrics" / name, replica=replica,
            database_url=s.database_url) | self.service_env

    def _launch(self, name: str, replica: int) -> PidRecord:
        cmd = self._command(name)
        log = self.logs_dir / f"{name}.{replica}.log"
        proc = launch(cmd, self._env(name, replica), log, cwd=self.home,
                      banner=f"--- chaosctl: starting {name}.{replica} at {time.ctime()}")
        self._children[proc.pid] = proc
        rec = PidRecord(name, replica, proc.pid, self.settings.port(name), cmd,
                        proc_starttime(proc.pid), str(log))
        self.run.write(rec)
        return rec

    def _start_all(self, todo: list[tuple[str, int]],
                   on_ready: ReadyCallback | None) -> list[PidRecord]:
        """Start `todo` (redis first: services need it), wait for all; undo all on failure."""
        started: list[PidRecord] = []
        deadline = time.monotonic() + self.settings.start_timeout
        try:
            first = [t for t in todo if t[0] == "redis"]
            for group in (first, [t for t in todo if t[0] != "redis"]):
                batch = [self._launch(n, r) for n, r in group]
                started += batch
                self._wait_ready(batch, deadline, on_ready)
        except BaseException:
            self._stop(started)
            raise
        return started

    def _wait_ready(self, pending: list[PidRecord], deadline: float,
                    on_ready: ReadyCallback | None) -> None:
        pending = list(pending)
        while pending:
            for rec in list(pending):
                child = self._children.get(rec.pid)
                # Our own child: trust poll(), not /proc (redis-server blanks its command
                # line for a moment while it initialises).
                code = child.poll() if child is not None else (None if rec.is_ours() else "?")
                if code is not None:
                    raise StackStartError(f"{rec.label} exited while starting (exit code {code}); "
                                          f"last lines of {rec.log}:\n{log_tail(rec.log)}")
                if self._is_ready(rec):
                    pending.remove(rec)
                    notify_ready(on_ready, ProcessStatus(rec.name, rec.replica, rec.pid,
                                                         rec.port, True, False, "ok"))
            if pending and time.monotonic() > deadline:
                rec = pending[0]
                raise StackStartError(
                    f"{rec.label} did not become ready within {self.settings.start_timeout:g}s "
                    f"(port {rec.port}); last lines of {rec.log}:\n{log_tail(rec.log)}")
            if pending:
                time.sleep(0.05)

    def _await_scrapes(self, since: float) -> None:
        """After a start: wait until Prometheus has scraped every running, unpaused service
        successfully since `since`, so `stack up && chaosctl health` holds at once. Skipped
        when Prometheus itself is not running (a `start` during an outage must not fail)."""
        live = list(self._live().values())
        if not any(r.name == "prometheus" and not r.is_paused() for r in live):
            return
        paused = {r.name for r in live if r.is_paused()}
        jobs = [n for n in SERVICES if n not in paused and any(r.name == n for r in live)]
        # Imported here: the Prometheus client (requests + prometheus-api-client) costs about
        # 0.17 s of import (python -X importtime) that status/down/pause/kill never need.
        from chaosctl.runtime.scrape import wait_scraped

        wait_scraped(self.settings, jobs, since, self.settings.start_timeout)

    def _is_ready(self, rec: PidRecord) -> bool:
        host = self.settings.host
        if rec.name == "redis":
            return probes.redis_ping(host, rec.port)
        if rec.name == "prometheus":
            return probes.prometheus_ready(self.settings.url("prometheus"))
        # This replica holds the socket, and the port answers /health.
        return pid_listens_on(rec.pid, rec.port) and probes.service_health(
            self.settings.url(rec.name)) is not None

    def _prepare(self, fresh: bool) -> None:
        for sub in ("data", "logs", "redis", "run", "prometheus/data"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        self._admin_token()
        write_prometheus_config(self.settings, stack_dir() / "prometheus" / "rules",
                                self.home / "prometheus" / "prometheus.yml")
        for svc in SERVICES:
            mdir = self.home / "metrics" / svc
            if fresh:  # dead processes' metric files would otherwise be summed in
                shutil.rmtree(mdir, ignore_errors=True)
            mdir.mkdir(parents=True, exist_ok=True)

    # -- preflight -----------------------------------------------------------------------------
    def _check_binaries(self) -> None:
        for binary, how in INSTALL_HINTS.items():
            if shutil.which(binary) is None:
                raise MissingBinaryError(f"{binary} not found on PATH; install it with: {how}")

    def _check_ports(self, names: set[str]) -> None:
        for name in sorted(names, key=ALL_PROCESSES.index):
            port = self.settings.port(name)
            if not port_is_free(self.settings.host, port):
                owner = port_owner(port)
                who = f" by pid {owner[0]} ({owner[1][:80]})" if owner else ""
                raise PortInUseError(
                    f"port {port} for {name} is already in use{who}",
                    hint=f"stop that process or set CHAOSCTL_{name.upper()}_PORT")

    def _remove_stale(self, only: str | None = None) -> list[str]:
        """Delete pid files that do not describe a live process of ours; describe each."""
        records, corrupt = self.run.records()
        found = [f"{p.name} is unreadable" for p in corrupt if only is None]
        for path in corrupt if only is None else []:
            path.unlink(missing_ok=True)
        for rec in records:
            if (only is None or rec.name == only) and not rec.is_ours():
                found.append(f"{rec.label}.pid named pid {rec.pid}, which is gone or not ours")
                self.run.remove(rec.name, rec.replica)
        return found

    # -- bookkeeping ---------------------------------------------------------------------------
    def _expected(self, state: dict) -> dict[str, int]:
        return {n: int(state["replicas"].get(n, 1)) for n in ALL_PROCESSES}

    def _live(self) -> dict[str, PidRecord]:
        return {rec.label: rec for rec in self.run.records()[0] if rec.is_ours()}

    def _records_of(self, name: str) -> list[PidRecord]:
        return sorted((r for r in self._live().values() if r.name == name),
                      key=lambda r: r.replica)

    def _running_records(self, service: str) -> list[PidRecord]:
        records = self._records_of(self._check_name(service))
        if not records:
            raise StackNotRunningError(f"{service} is not running",
                                       hint=f"start it with `chaosctl stack start {service}`")
        return records

    def _require_running(self) -> None:
        if not self._live():
            raise StackNotRunningError("the stack is not running",
                                       hint="start it with `chaosctl stack up`")

    def _stop(self, records: list[PidRecord]) -> list[StoppedProcess]:
        trusted = frozenset(pid for pid, child in self._children.items() if child.poll() is None)
        stopped = terminate(records, trusted=trusted)
        for rec in records:
            self.run.remove(rec.name, rec.replica)
            child = self._children.pop(rec.pid, None)
            if child is not None:
                child.wait(timeout=5)
        return stopped

    def _signal_all(self, service: str, sig: int, want_paused: bool) -> list[int]:
        records = self._running_records(service)
        pids = [r.pid for r in records if send(r, sig)]
        # Wait until the kernel shows the new state, so a status right after agrees.
        deadline = time.monotonic() + 5
        while any(r.is_paused() != want_paused for r in records) and time.monotonic() < deadline:
            time.sleep(0.02)
        return pids

    def _fill_health(self, entries: list[ProcessStatus]) -> None:
        running = sorted({e.name for e in entries if e.alive and not e.paused})
        health = probes.health_of(self.settings, running)
        for e in entries:
            if e.paused:
                e.health = HEALTH_PAUSED
            elif e.alive:
                e.health = health[e.name]

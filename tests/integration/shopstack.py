"""Start the shop stack as plain processes: a private redis-server, optionally a throwaway
PostgreSQL cluster, and the five services, each on a free loopback port.

Used by the integration tests and by benchmarks/orders_throughput.py. Services are launched
with the same process code as chaosctl's local backend (chaosctl.runtime.procs: command line,
environment, own session, log file), without its pid files and state directory: every
process is remembered by its Popen handle and stopped by that PID only.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import httpx

from chaosctl.clients.redis import redis_client
from chaosctl.domain import SERVICES
from chaosctl.runtime.procs import launch, service_command, shop_env
from tests.support import free_port, wait_for

REPO = Path(__file__).resolve().parents[2]
STACK_DIR = REPO / "stack"
PG_BIN_DIRS = ("/usr/lib/postgresql/15/bin",)
# Variables a developer's shell might carry that would point our processes somewhere else.
_SCRUB_PREFIXES = ("SHOP_", "CHAOSCTL_")
_SCRUB_NAMES = ("DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR", "PYTHONPATH")


class Proc:
    """One child process with its log file; stopped only through its own PID."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log_path: Path,
                 user: str | None = None) -> None:
        self.name, self.cmd, self.env, self.log_path = name, cmd, env, log_path
        self.user = user
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.name} was never started"
        return self.popen.pid

    def start(self) -> Proc:
        # A new session: Ctrl-C in the terminal reaches pytest, which then stops us by PID.
        self.popen = launch(self.cmd, self.env, self.log_path, user=self.user)
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it does not exit within `timeout`; reaps the child."""
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)

    def kill9(self) -> None:
        assert self.popen is not None and self.popen.poll() is None, f"{self.name} not running"
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def pg_bin(tool: str) -> str | None:
    """Path of a PostgreSQL server tool, on PATH or in the Debian versioned directory."""
    found = shutil.which(tool)
    if found:
        return found
    for directory in PG_BIN_DIRS:
        candidate = Path(directory) / tool
        if candidate.exists():
            return str(candidate)
    return None


def postgres_unavailable() -> str | None:
    """Why a throwaway PostgreSQL cluster cannot be started here, or None if it can."""
    missing = [t for t in ("initdb", "postgres", "createdb", "pg_isready") if not pg_bin(t)]
    if missing:
        return f"PostgreSQL server binaries not found: {', '.join(missing)} (install postgresql-15)"
    if os.geteuid() == 0 and not shutil.which("runuser"):
        return "running as root but runuser is missing (postgres refuses to run as root)"
    return None


class PostgresCluster:
    """A throwaway cluster (initdb) on a free loopback port, torn down by PID."""

    def __init__(self) -> None:
        # Not under pytest's 0700 tmp dir: the postgres user must be able to reach it.
        self.root = Path(tempfile.mkdtemp(prefix="shop-pg-"))
        self.data = self.root / "data"
        self.sock = self.root / "sock"
        self.port = free_port()
        self.proc: Proc | None = None
        self.dbname = "shop"

    def _as_pg(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv

    def start(self) -> PostgresCluster:
        self.sock.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.sock, "postgres", "postgres")
        subprocess.run(self._as_pg([pg_bin("initdb") or "initdb", "-D", str(self.data),
                                    "-U", "postgres", "--auth=trust", "-E", "UTF8",
                                    "--no-sync"]),
                       check=True, capture_output=True, timeout=120)
        cmd = [pg_bin("postgres") or "postgres", "-D", str(self.data), "-p", str(self.port),
               "-k", str(self.sock), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
               "-c", "max_connections=200"]
        # Not through runuser: it forks, and the PID we hold must be the postmaster's own so
        # that stopping it waits for the real shutdown. Popen drops to the postgres user.
        user = "postgres" if os.geteuid() == 0 else None
        self.proc = Proc("postgres", cmd, dict(os.environ), self.root / "postgres.log",
                         user=user).start()
        isready = pg_bin("pg_isready") or "pg_isready"
        wait_for(lambda: subprocess.run([isready, "-h", "127.0.0.1", "-p", str(self.port)],
                                        capture_output=True).returncode == 0,
                 timeout=60, what="postgres to accept connections")
        subprocess.run(self._as_pg([pg_bin("createdb") or "createdb", "-h", "127.0.0.1",
                                    "-p", str(self.port), "-U", "postgres", self.dbname]),
                       check=True, capture_output=True, timeout=60)
        return self

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.dbname}"

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(timeout=20)  # SIGTERM = smart shutdown of the postmaster
        shutil.rmtree(self.root, ignore_errors=True)


class ShopStack:
    """redis-server + the five services on free ports, with their env as stack/README.md says.

    `database_url=None` means SQLite files in the data dir; otherwise every service uses it.
    `env` adds variables (e.g. SHOP_BREAKER_OPEN_S) to every service of this stack.
    """

    def __init__(self, workdir: Path, database_url: str | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.workdir = Path(workdir)
        self.database_url = database_url
        self.extra_env = dict(env or {})
        self.ports = {name: free_port() for name in (*SERVICES, "redis")}
        while len(set(self.ports.values())) < len(self.ports):
            self.ports = {name: free_port() for name in (*SERVICES, "redis")}
        self.admin_token = secrets.token_hex(16)
        self.data_dir = self.workdir / "data"
        self.procs: dict[str, Proc] = {}
        self.extras: list[Proc] = []

    # -- addresses -------------------------------------------------------------------
    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.ports['redis']}/0"

    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    # -- processes -------------------------------------------------------------------
    def service_env(self, name: str, overrides: dict[str, str] | None = None,
                    metrics_dir: Path | None = None) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(_SCRUB_PREFIXES) and k not in _SCRUB_NAMES}
        env = shop_env(base, stack=STACK_DIR, urls={s: self.url(s) for s in SERVICES},
                       redis_url=self.redis_url, data_dir=self.data_dir,
                       admin_token=self.admin_token,
                       metrics_dir=metrics_dir or self.workdir / "metrics" / name,
                       database_url=self.database_url)
        env.update(self.extra_env)
        env.update(overrides or {})
        return env

    def _service_proc(self, name: str, port: int, env: dict[str, str], tag: str) -> Proc:
        cmd = service_command(name, "127.0.0.1", port)
        return Proc(tag, cmd, env, self.workdir / "logs" / f"{tag}.log")

    def start(self) -> ShopStack:
        try:
            self._start_redis()
            for name in SERVICES:  # all at once: they import in parallel, then we wait
                env = self.service_env(name)
                self.procs[name] = self._service_proc(name, self.ports[name], env, name).start()
            for name in SERVICES:
                self.wait_healthy(name)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_redis(self) -> None:
        rdir = self.workdir / "redis"
        rdir.mkdir(parents=True, exist_ok=True)
        cmd = ["redis-server", "--port", str(self.ports["redis"]), "--bind", "127.0.0.1",
               "--save", "", "--appendonly", "no", "--dir", str(rdir), "--daemonize", "no"]
        self.procs["redis"] = Proc("redis", cmd, dict(os.environ),
                                   self.workdir / "logs" / "redis.log").start()
        client = redis_client("127.0.0.1", self.ports["redis"])
        try:
            wait_for(lambda: self._check_alive("redis") and client.ping(), timeout=30,
                     what="redis-server to answer PING")
        finally:
            client.close()

    def _check_alive(self, key: str, proc: Proc | None = None) -> bool:
        proc = proc or self.procs[key]
        if not proc.alive():
            raise AssertionError(f"{proc.name} exited early; log tail:\n{proc.log_tail()}")
        return True

    def wait_healthy(self, name: str, proc: Proc | None = None, port: int | None = None,
                     timeout: float = 60.0) -> None:
        proc = proc or self.procs[name]
        url = f"http://127.0.0.1:{port or self.ports[name]}/health"

        def healthy() -> bool:
            self._check_alive(name, proc)
            response = httpx.get(url, timeout=2)
            body = response.json()
            return body.get("service") == name and body.get("pid") == proc.pid

        wait_for(healthy, timeout=timeout, interval=0.1, what=f"{proc.name} /health")

    def spawn(self, name: str, env: dict[str, str] | None = None, tag: str | None = None
              ) -> tuple[Proc, int]:
        """An extra process of service `name` on its own port and metrics dir (e.g. a second
        gateway with SHOP_MAX_INFLIGHT=5). Stopped with the stack unless the test stops it."""
        port = free_port()
        tag = tag or f"{name}-extra{len(self.extras)}"
        full_env = self.service_env(name, env, metrics_dir=self.workdir / "metrics" / tag)
        proc = self._service_proc(name, port, full_env, tag).start()
        self.extras.append(proc)
        try:
            self.wait_healthy(name, proc=proc, port=port)
        except BaseException:
            proc.stop()
            raise
        return proc, port

    def kill9(self, name: str) -> None:
        self.procs[name].kill9()

    def restart(self, name: str) -> None:
        """Start `name` again with exactly the command and environment it had."""
        old = self.procs[name]
        old.stop()
        self.procs[name] = Proc(old.name, old.cmd, old.env, old.log_path).start()
        self.wait_healthy(name)

    def restart_redis(self) -> None:
        """Stop redis-server and start a new one on the same port. It runs with `--save ""`
        and no AOF, like the stack's, so it comes back EMPTY: every key is forgotten."""
        self.procs["redis"].stop()
        self._start_redis()

        def reconnected() -> bool:
            # A pooled connection to the old server fails once, then the pool reconnects;
            # clearing chaos is harmless (the new Redis has none) and touches Redis.
            with httpx.Client(timeout=5) as client:
                for service in ("payments", "inventory"):
                    if client.delete(f"{self.url(service)}/chaos/config").status_code != 200:
                        return False
                health = client.get(f"{self.url('orders')}/health").json()
                return bool(health["dependencies"]["redis"] == "ok")

        wait_for(reconnected, timeout=60, interval=0.2, what="services to reach the new Redis")

    def stop(self) -> None:
        """Stop every process this stack started, services first, redis last."""
        errors: list[str] = []
        for proc in [*self.extras, *(self.procs[n] for n in SERVICES if n in self.procs)]:
            try:
                proc.stop()
            except Exception as exc:  # noqa: BLE001 - keep stopping the others
                errors.append(f"{proc.name}: {exc!r}")
        if "redis" in self.procs:
            self.procs["redis"].stop()
        if errors:
            raise RuntimeError("could not stop: " + "; ".join(errors))

    def pids(self) -> dict[str, int]:
        return {p.name: p.pid for p in [*self.procs.values(), *self.extras] if p.alive()}

    # -- observation -----------------------------------------------------------------
    def metrics_text(self, service: str, port: int | None = None) -> str:
        response = httpx.get(f"http://127.0.0.1:{port or self.ports[service]}/metrics",
                             timeout=10)
        response.raise_for_status()
        return response.text


def metric_value(text: str, sample: str, **labels: str) -> float:
    """Sum of the samples named `sample` whose labels include `labels` (0.0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def bucket_counts(text: str, histogram: str, **labels: str) -> dict[float, float]:
    """Cumulative bucket counts {le: count} of a histogram (labels matched as a subset)."""
    from prometheus_client.parser import text_string_to_metric_families

    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == f"{histogram}_bucket" and all(
                s.labels.get(k) == v for k, v in labels.items()
            ):
                le = float(s.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + s.value
    return buckets


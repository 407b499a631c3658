"""The docker backend: the stack as containers of one Compose project, through the Docker
Engine API (the `docker` SDK; podman's Docker-compatible socket works too).

Containers (all from the one image `chaosctl stack build` makes, see docker_image.py):
redis, prometheus, N replicas of each service, and `edge`, which publishes the services'
ports on 127.0.0.1 and relays each connection to a replica by DNS name (stack/image/
edge_proxy.py says why). They share the user network `<project>_default`, where each service
answers to its own name; data lives in named volumes (`restart` keeps them, `down --purge`
removes them). The verbs map to the engine's: kill = SIGKILL, pause = freezer, restart =
stop + start of the same container. Core code: never prints; long work reports runtime
progress events to `self.events` (Backend.progress), where the CLI adds its printer.

The services' volume (`shopdata`) is bound to $CHAOSCTL_HOME/data, the local backend's data
directory: whatever reads the SQLite files on the host (game-day's integrity check, the
outbox evidence step) finds them in the same place on both backends.
"""

from __future__ import annotations

import os
import queue
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chaosctl.config import Settings
from chaosctl.domain import INFRA, SERVICES
from chaosctl.errors import (
    InvalidInputError,
    PortInUseError,
    StackNotRunningError,
    StackStartError,
)
from chaosctl.runtime import docker_engine as eng
from chaosctl.runtime import docker_image, probes
from chaosctl.runtime.base import (
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
from chaosctl.runtime.local import _exclusive
from chaosctl.runtime.procs import RunDir, port_is_free
from chaosctl.runtime.scrape import wait_scraped

if TYPE_CHECKING:
    from docker.models.containers import Container

ALL = (*INFRA, *SERVICES)
STOP_TIMEOUT_S = 5
# Every container's resolv.conf. Docker's embedded DNS forwards a name it does not know (a
# stopped container's) upstream; with none reachable, glibc waited 5 s x 2 attempts before
# failing the lookup of `payments` while payments was down. Calls time out long before that,
# but their lookups kept the resolver's threads, and once payments was back the first new
# connections to it queued behind them and failed: the breaker that service-down had just
# reset opened again for its full 30 s (docker service-crash game day, MTTR 37.5 s).
DNS_OPTIONS = ("timeout:1", "attempts:1")


class DockerBackend(Backend):
    name = "docker"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = Path(settings.home).expanduser()
        self.run = RunDir(self.home / "run")  # only for the lock shared with other chaosctls
        self.project = eng.project_name()
        self.network = f"{self.project}_default"
        self.data_dir = self.home / "data"  # bound into the services as /data (shopdata)
        self._client: Any = None
        self._lock_depth = 0

    # -- engine --------------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = eng.connect()
        return self._client

    def _progress(self, message: str) -> None:
        self.progress("build", "image", message=message)

    def build(self, force: bool = False) -> dict[str, Any]:
        """Build the stack image (offline); see docker_image.build."""
        return docker_image.build(self.client, self._progress, force=force)

    # -- public operations ---------------------------------------------------------------------
    @_exclusive
    def up(self, on_ready: ReadyCallback | None = None) -> StackStatus:
        since = time.time()
        self.build()
        self._ensure_network_and_volumes()
        started: list[Container] = []
        for name in ALL:
            containers = self._containers(name)
            if not containers:
                started.append(self._create(name, 1))
            started += [self._start(c) for c in containers if c.status in _STOPPED]
        started += self._ensure_edge()
        if not started:
            return self.status()
        self._wait_ready(started, on_ready)
        self._await_scrapes(since)
        status = self.status()
        status.started = [self._label(c) for c in started if _service(c) != eng.EDGE]
        return status

    @_exclusive
    def down(self, purge: bool = False) -> list[StoppedProcess]:
        from chaosctl.runtime.workers import WorkerStore

        workers = WorkerStore(self.home)  # a pending reverter would start a service again
        for worker in workers.live():
            workers.stop(worker)
        stopped: list[StoppedProcess] = []
        containers = self._containers(None, include_edge=True)
        # Services first, so they do not log a burst of Redis errors on the way out.
        containers.sort(key=lambda c: _service(c) in INFRA)
        for c in containers:
            pid = _pid(c)
            how = "stale" if c.status in _STOPPED else "terminated"
            c.remove(force=True, v=False) if how == "stale" else self._stop_remove(c)
            if _service(c) != eng.EDGE:
                stopped.append(StoppedProcess(_service(c), _replica(c), pid or 0, how))
        for net in self.client.networks.list(names=[self.network]):
            if net.name == self.network:
                net.remove()
        if purge:
            for volume in self._volumes():
                volume.remove(force=True)
            # Removing a bind-backed volume leaves the directory's files: purge them too.
            shutil.rmtree(self.data_dir, ignore_errors=True)
        return stopped

    def status(self) -> StackStatus:
        by_name: dict[str, list[Container]] = {n: [] for n in ALL}
        for c in self._containers(None):
            by_name.setdefault(_service(c), []).append(c)
        entries: list[ProcessStatus] = []
        expected: dict[str, int] = {}
        port = self.settings.port
        for name in ALL:
            containers = sorted(by_name.get(name, []), key=_replica)
            expected[name] = max(1, len(containers))
            if not containers:
                entries.append(ProcessStatus(name, 0, None, port(name), False, False,
                                             HEALTH_STOPPED))
            for c in containers:
                state = c.attrs.get("State", {})
                alive = bool(state.get("Running"))
                paused = bool(state.get("Paused"))
                health = HEALTH_UNREACHABLE if alive else _down_health(state)
                entries.append(ProcessStatus(name, _replica(c), _pid(c) if alive else None,
                                             port(name), alive, paused, health))
        running = sorted({e.name for e in entries if e.alive and not e.paused})
        health = probes.health_of(self.settings, running)
        for e in entries:
            if e.paused:
                e.health = HEALTH_PAUSED
            elif e.alive:
                e.health = health[e.name]
        return StackStatus(self.name, str(self.home), entries, expected)

    @_exclusive
    def restart(self, services: list[str], on_ready: ReadyCallback | None = None) -> StackStatus:
        names = list(dict.fromkeys(self._check_name(s) for s in services))
        if not names:
            raise InvalidInputError("name at least one service to restart",
                                    hint=f"valid names: {', '.join(ALL)}")
        since = time.time()
        self._ensure_network_and_volumes()
        started: list[Container] = []
        for name in names:
            containers = self._containers(name)
            if not containers:
                started.append(self._create(name, 1))
            for c in containers:
                if c.status == "paused":
                    c.unpause()
                c.restart(timeout=STOP_TIMEOUT_S)
                started.append(c)
        started += self._ensure_edge()
        self._wait_ready(started, on_ready)
        self._await_scrapes(since)
        return self.status()

    @_exclusive
    def scale(self, service: str, replicas: int,
              on_ready: ReadyCallback | None = None) -> StackStatus:
        self._check_scale(service, replicas)
        if not self._containers(None):
            raise StackNotRunningError("the stack is not running",
                                       hint="start it with `chaosctl stack up`")
        self._ensure_network_and_volumes()
        current = {_replica(c) + 1: c for c in self._containers(service)}
        for number, c in current.items():
            if number > replicas:
                self._stop_remove(c)
        started = [self._start(c) for n, c in current.items()
                   if n <= replicas and c.status in _STOPPED]
        started += [self._create(service, n) for n in range(1, replicas + 1)
                    if n not in current]
        self._wait_ready(started, on_ready)
        return self.status()

    @_exclusive
    def kill(self, service: str) -> list[StoppedProcess]:
        import docker.errors

        result = []
        for c in self._running(service):
            pid = _pid(c) or 0
            try:
                c.kill()
            except docker.errors.APIError:
                if c.status != "paused":
                    raise
                c.unpause()  # a frozen container cannot take the signal
                c.kill()
            c.wait(timeout=10)
            result.append(StoppedProcess(service, _replica(c), pid, "killed"))
        return result

    @_exclusive
    def start(self, service: str, on_ready: ReadyCallback | None = None) -> StackStatus:
        name = self._check_name(service)
        since = time.time()
        self._ensure_network_and_volumes()
        containers = self._containers(name)
        started = [self._start(c) for c in containers if c.status in _STOPPED]
        if not containers:
            started.append(self._create(name, 1))
        started += self._ensure_edge()
        if started:
            self._wait_ready(started, on_ready)
            self._await_scrapes(since)
        return self.status()

    def pause(self, service: str) -> list[int]:
        pids = []
        for c in self._running(service):
            if c.status != "paused":
                c.pause()
            pids.append(_pid(c) or 0)
        return pids

    def resume(self, service: str) -> list[int]:
        pids = []
        for c in self._running(service):
            if c.status == "paused":
                c.unpause()
            pids.append(_pid(c) or 0)
        return pids

    def logs(self, service: str | None = None, tail: int = 50,
             follow: bool = False) -> Iterator[str]:
        names = [self._check_name(service)] if service else list(ALL)
        containers = [c for n in names for c in sorted(self._containers(n), key=_replica)]
        if not containers:
            raise StackNotRunningError(
                f"no containers for {service or 'the stack'} in project {self.project}",
                hint="start the stack with `chaosctl stack up --backend docker`")
        return _read_logs(containers, tail, follow, prefix=len(containers) > 1)

    # -- containers ----------------------------------------------------------------------------
    def _containers(self, name: str | None, include_edge: bool = False) -> list[Container]:
        filters = [f"{eng.PROJECT_LABEL}={self.project}"]
        if name is not None:
            filters.append(f"{eng.SERVICE_LABEL}={name}")
        found = self.client.containers.list(all=True, filters={"label": filters})
        return [c for c in found if include_edge or name is not None or
                _service(c) in ALL]

    def _running(self, service: str) -> list[Container]:
        containers = [c for c in self._containers(self._check_name(service))
                      if c.status in ("running", "paused")]
        if not containers:
            raise StackNotRunningError(f"{service} is not running",
                                       hint=f"start it with `chaosctl stack start {service}`")
        return containers

    def _start(self, c: Container) -> Container:
        c.start()
        return c

    def _stop_remove(self, c: Container) -> None:
        import docker.errors

        try:
            if c.status == "paused":
                c.unpause()
            c.stop(timeout=STOP_TIMEOUT_S)
            c.remove(v=False)
        except docker.errors.NotFound:
            pass

    def _ensure_network_and_volumes(self) -> None:
        labels = {eng.PROJECT_LABEL: self.project, eng.MANAGED_LABEL: "chaosctl"}
        if not [n for n in self.client.networks.list(names=[self.network])
                if n.name == self.network]:
            self.client.networks.create(self.network, driver="bridge", check_duplicate=True,
                                        labels={**labels, eng.NETWORK_LABEL: "default"})
        self._prepare_data_dir()
        have = {v.name for v in self._volumes()}
        for volume in eng.VOLUMES:
            full = f"{self.project}_{volume}"
            if full in have:
                continue
            # A bind-backed local volume: the files stay on the host, in data_dir.
            opts = ({"type": "none", "o": "bind", "device": str(self.data_dir)}
                    if volume == eng.DATA_VOLUME else None)
            self.client.volumes.create(full, driver="local", driver_opts=opts,
                                       labels={**labels, eng.VOLUME_LABEL: volume})

    def _prepare_data_dir(self) -> None:
        """data_dir exists and the services' user can write it and every file in it (also
        files a host-side reader or the local backend created as root)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            return  # the services then run as this user (_service_user): nothing to hand over
        for path in (self.data_dir, *self.data_dir.iterdir()):
            if path.stat().st_uid != eng.SHOP_UID:
                os.chown(path, eng.SHOP_UID, -1)

    def _service_user(self) -> str | None:
        """The image's own user when chaosctl runs as root (it owns data_dir, see above);
        else this user, who owns data_dir and cannot hand it to another uid."""
        return None if os.geteuid() == 0 else f"{os.getuid()}:{os.getgid()}"

    def _volumes(self) -> list[Any]:
        return self.client.volumes.list(filters={"label": f"{eng.PROJECT_LABEL}={self.project}"})

    def _ensure_edge(self) -> list[Container]:
        edges = self._containers(eng.EDGE)
        if not edges:
            return [self._create(eng.EDGE, 1)]
        return [self._start(c) for c in edges if c.status in _STOPPED]

    def _create(self, name: str, number: int) -> Container:
        """Create and start one container of the project (replica `number`, from 1)."""
        api = self.client.api
        host = self.settings.host
        if name == eng.EDGE:
            ports = {eng.CONTAINER_PORTS[s]: (host, self.settings.port(s)) for s in SERVICES}
            entrypoint = ["python", "/app/image/edge_proxy.py"]
            command = [f"{eng.CONTAINER_PORTS[s]}={s}:{eng.CONTAINER_PORTS[s]}"
                       for s in SERVICES]
            env: dict[str, str] = {}
            volume = None
        elif name in INFRA:
            ports = {eng.CONTAINER_PORTS[name]: (host, self.settings.port(name))}
            entrypoint, command = _infra_command(name)
            env = {}
            volume = "redisdata" if name == "redis" else None
        else:
            ports, entrypoint, env, volume = {}, None, self._service_env(number), "shopdata"
            command = [name, "--port", str(eng.CONTAINER_PORTS[name]), "--host", "0.0.0.0"]
        for container_port, (bind_host, host_port) in ports.items():
            if not port_is_free(bind_host, host_port):
                raise PortInUseError(
                    f"port {host_port} for {_owner_of(container_port)} is already in use",
                    hint=f"stop that process or set CHAOSCTL_"
                         f"{_owner_of(container_port).upper()}_PORT")
        binds = ({f"{self.project}_{volume}": {"bind": "/data", "mode": "rw"}}
                 if volume else None)
        host_config = api.create_host_config(
            port_bindings=ports or None, binds=binds, init=True,
            # the published ports belong to 127.0.0.1: never to other machines
            dns_opt=list(DNS_OPTIONS),
        )
        networking = api.create_networking_config(
            {self.network: api.create_endpoint_config(aliases=[name])})
        cname = eng.container_name(self.project, name, number)
        created = api.create_container(
            docker_image.IMAGE, command=command, entrypoint=entrypoint, name=cname,
            user=self._service_user() if name in SERVICES else None,
            hostname=f"{name}-{number}", environment=env,
            labels=eng.labels(self.project, name, number),
            ports=list(ports) or None, host_config=host_config, networking_config=networking)
        api.start(created["Id"])
        return self.client.containers.get(created["Id"])

    def _service_env(self, number: int) -> dict[str, str]:
        env = {f"SHOP_{s.upper()}_URL": f"http://{s}:{eng.CONTAINER_PORTS[s]}"
               for s in SERVICES}
        env.update({
            "SHOP_REDIS_URL": "redis://redis:6379/0",
            "SHOP_DATA_DIR": "/data",
            "PROMETHEUS_MULTIPROC_DIR": "/metrics",
            "SHOP_REPLICA": str(number - 1),
            "CHAOSCTL_ADMIN_TOKEN": self._admin_token(),
            # libuv's resolver threads (uvloop's getaddrinfo; 4 by default): lookups that
            # hang (DNS_OPTIONS) must not hold up every new connection of the service.
            "UV_THREADPOOL_SIZE": "16",
        })
        # As the local backend passes its environment on: SHOP_* tuning (SHOP_MAX_INFLIGHT,
        # SHOP_LOOP ...) set for chaosctl reaches the services; where they are is ours.
        for key, value in os.environ.items():
            if key.startswith("SHOP_") and key not in env and not key.endswith("_URL"):
                env[key] = value
        if self.settings.database_url:
            env["DATABASE_URL"] = self.settings.database_url
        return env

    # -- readiness -----------------------------------------------------------------------------
    def _wait_ready(self, containers: list[Container], on_ready: ReadyCallback | None) -> None:
        deadline = time.monotonic() + self.settings.start_timeout
        order = sorted(containers, key=lambda c: _service(c) != "redis")
        pending = list(order)
        while pending:
            for c in list(pending):
                c.reload()
                if c.status in _STOPPED:
                    raise StackStartError(
                        f"{self._label(c)} exited while starting (exit code "
                        f"{c.attrs['State'].get('ExitCode')}); last lines of its log:\n"
                        f"{_tail(c)}")
                if self._is_ready(c):
                    pending.remove(c)
                    if _service(c) != eng.EDGE:
                        notify_ready(on_ready, ProcessStatus(
                            _service(c), _replica(c), _pid(c),
                            self.settings.port(_service(c)), True, False, "ok"))
            if pending and time.monotonic() > deadline:
                c = pending[0]
                raise StackStartError(
                    f"{self._label(c)} did not become ready within "
                    f"{self.settings.start_timeout:g}s; last lines of its log:\n{_tail(c)}")
            if pending:
                time.sleep(0.2)

    def _is_ready(self, c: Container) -> bool:
        name, s = _service(c), self.settings
        if c.status == "paused":
            return True  # a paused replica is someone's fault injection, not a start
        if name == "redis":
            return probes.redis_ping(s.host, s.redis_port)
        if name == "prometheus":
            return probes.prometheus_ready(s.prometheus_url)
        if name == eng.EDGE:
            return True  # its ports answer once the services behind it do
        # This replica itself answers /health inside the network (the published port is the
        # edge's, which may reach another replica), then the edge reaches the service.
        probe = ("import urllib.request as u; "
                 f"u.urlopen('http://127.0.0.1:{eng.CONTAINER_PORTS[name]}/health', timeout=1)")
        code, _ = c.exec_run(["python", "-c", probe])
        return code == 0 and probes.service_health(s.url(name)) is not None

    def _await_scrapes(self, since: float) -> None:
        live = [c for c in self._containers(None) if c.status == "running"]
        if not any(_service(c) == "prometheus" for c in live):
            return
        jobs = [n for n in SERVICES if any(_service(c) == n for c in live)]
        wait_scraped(self.settings, jobs, since, self.settings.start_timeout)

    # -- names ---------------------------------------------------------------------------------
    def _label(self, c: Container) -> str:
        return f"{_service(c)}.{_replica(c)}"


_STOPPED = ("created", "exited", "dead")


def _service(c: Container) -> str:
    return str(c.labels.get(eng.SERVICE_LABEL, ""))


def _replica(c: Container) -> int:
    try:
        return int(c.labels.get(eng.NUMBER_LABEL, "1")) - 1
    except ValueError:
        return 0


def _pid(c: Container) -> int | None:
    pid = c.attrs.get("State", {}).get("Pid")
    return int(pid) if pid else None


def _down_health(state: dict[str, Any]) -> str:
    # SIGKILL (137) without the OOM killer: `stack kill` / service-down; else stopped.
    if state.get("ExitCode") == 137 and not state.get("OOMKilled"):
        return HEALTH_KILLED
    return HEALTH_STOPPED


def _owner_of(container_port: int) -> str:
    return next(n for n, p in eng.CONTAINER_PORTS.items() if p == container_port)


def _infra_command(name: str) -> tuple[list[str], list[str]]:
    if name == "redis":
        # As the local stack: every acknowledged write is on disk before the reply.
        return ["redis-server"], ["--bind", "0.0.0.0", "--port", "6379", "--protected-mode",
                                  "no", "--save", "", "--appendonly", "yes", "--appendfsync",
                                  "always", "--dir", "/data"]
    return ["prometheus"], ["--config.file=/app/image/prometheus.yml",
                            "--storage.tsdb.path=/data", "--web.listen-address=0.0.0.0:9090",
                            "--web.enable-lifecycle"]


def _tail(c: Container, lines: int = 15) -> str:
    try:
        text = c.logs(tail=lines).decode(errors="replace").rstrip()
    except Exception:  # noqa: BLE001 - only for an error message
        return "(no log)"
    return text or "(log is empty)"


def _read_logs(containers: list[Container], tail: int, follow: bool,
               prefix: bool) -> Iterator[str]:
    """Each container's last `tail` lines, then (with `follow`) new ones from all of them."""

    def fmt(c: Container, line: str) -> str:
        return f"[{_service(c)}.{_replica(c)}] {line}" if prefix else line

    if not follow:
        for c in containers:
            data = c.logs(tail=tail) if tail > 0 else b""
            for line in data.decode(errors="replace").splitlines():
                yield fmt(c, line)
        return
    lines: queue.Queue[str] = queue.Queue()

    def pump(c: Container) -> None:
        buffer = b""
        for chunk in c.logs(stream=True, follow=True, tail=tail):
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            for line in complete:
                lines.put(fmt(c, line.decode(errors="replace")))

    for c in containers:
        threading.Thread(target=pump, args=(c,), daemon=True).start()
    while True:
        yield lines.get()

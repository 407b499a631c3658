"""The interface every runtime backend implements, and the values it returns.

The CLI, the chaos injector and the game-day talk to the stack only through `Backend`, so a
new way of running the stack (containers, a remote host) is one more subclass.
"""

from __future__ import annotations

import abc
import os
import secrets
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from chaosctl.domain import SERVICES
from chaosctl.errors import InvalidInputError, UnknownServiceError
from chaosctl.events import Event, EventBus, Listener

if TYPE_CHECKING:
    from chaosctl.config import Settings

# Processes that are not shop services but belong to the stack all the same.
INFRA: tuple[str, ...] = ("redis", "prometheus")
ALL_PROCESSES: tuple[str, ...] = INFRA + SERVICES
# `stack scale` and `stack up` alike: 16 replicas per service at most, on every backend.
MAX_REPLICAS = 16

# Health values a process entry can carry (besides a service's own ok/degraded/down).
HEALTH_PAUSED = "paused"
HEALTH_KILLED = "killed"
HEALTH_STOPPED = "stopped"
HEALTH_UNREACHABLE = "unreachable"


@dataclass
class ProcessStatus:
    """One process of the stack (one replica of a service, or redis / prometheus).

    `pid` is None when the process is expected but not running. `health` is the service's own
    /health status ("ok", "degraded", "down") when it answered, else one of "unreachable",
    "paused", "killed", "stopped".
    """

    name: str
    replica: int
    pid: int | None
    port: int
    alive: bool
    paused: bool
    health: str

    @property
    def label(self) -> str:
        return f"{self.name}.{self.replica}"

    @property
    def healthy(self) -> bool:
        return self.alive and not self.paused and self.health == "ok"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StackStatus:
    """What the stack looks like now: one entry per expected process, running or not."""

    backend: str
    home: str
    processes: list[ProcessStatus]
    expected: dict[str, int]  # process name -> replica count the stack should have
    started: list[str] = field(default_factory=list)  # labels started by this call

    @property
    def healthy(self) -> bool:
        return bool(self.processes) and all(p.healthy for p in self.processes)

    def to_json(self) -> dict[str, Any]:
        """The stable `stack status --json` shape (documented in the CLI help)."""
        return {
            "backend": self.backend,
            "home": self.home,
            "processes": [p.to_json() for p in self.processes],
            "healthy": self.healthy,
        }


@dataclass
class StoppedProcess:
    """A process `down`/`restart`/`scale` dealt with; `how` is terminated, killed or stale."""

    name: str
    replica: int
    pid: int
    how: str


# Receives an `Event(kind="ready", source="runtime", subject="orders.0",
# data=ProcessStatus.to_json())` as each process becomes ready during up/restart/scale/start
# (the CLI shows progress): the one event type of the engine and the game day.
ReadyCallback = Listener


def notify_ready(on_ready: ReadyCallback | None, status: ProcessStatus) -> None:
    """Tell `on_ready` that `status` is ready; a listener that raises is logged, not fatal."""
    if on_ready is not None:
        EventBus([on_ready]).emit(
            Event.now("ready", "runtime", status.label, status.to_json()))


class Backend(abc.ABC):
    """Start, stop and break the stack. Core code: never prints, raises ChaosctlError.

    Long work (an image build, a pull) reports progress as `Event(source="runtime")` to the
    listeners in `self.events` (the CLI adds its printer); the backend never prints.
    """

    name: str = "abstract"
    settings: Settings

    def _admin_token(self) -> str:
        """The stack's admin token: CHAOSCTL_ADMIN_TOKEN or the home's token file, which is
        created (0600, a new random token) the first time a stack is set up there."""
        token = self.settings.admin_token()
        if token:
            return token
        path = self.settings.admin_token_file
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another chaosctl wrote it just now (or it is empty)
            return path.read_text().strip()
        token = secrets.token_urlsafe(32)
        with os.fdopen(fd, "w") as fh:
            fh.write(token + "\n")
        return token

    @property
    def events(self) -> EventBus:
        bus: EventBus | None = self.__dict__.get("_events")
        if bus is None:
            bus = self.__dict__["_events"] = EventBus()
        return bus

    def _check_name(self, name: str) -> str:
        """`name` when it is a process of the stack; UnknownServiceError listing them else."""
        if name not in ALL_PROCESSES:
            raise UnknownServiceError(f"unknown service {name!r}; valid names: "
                                      f"{', '.join(ALL_PROCESSES)}")
        return name

    def _check_scale(self, service: str, replicas: int) -> str:
        """The checks `scale` makes before touching anything, the same on every backend."""
        if self._check_name(service) not in SERVICES:
            raise InvalidInputError(f"{service} cannot be scaled; only the shop services can",
                                    hint=f"scalable: {', '.join(SERVICES)}")
        if not 1 <= replicas <= MAX_REPLICAS:
            raise InvalidInputError(f"replica count {replicas} for {service} is outside "
                                    f"1-{MAX_REPLICAS}", hint=f"e.g. {service}=3")
        return service

    def progress(self, kind: str, subject: str, **data: Any) -> None:
        """Emit a runtime progress event (e.g. kind="build", data={"message": ...})."""
        self.events.emit(Event.now(kind, "runtime", subject, data))

    @abc.abstractmethod
    def up(self, on_ready: ReadyCallback | None = None) -> StackStatus: ...

    @abc.abstractmethod
    def down(self, purge: bool = False) -> list[StoppedProcess]: ...

    @abc.abstractmethod
    def status(self) -> StackStatus: ...

    @abc.abstractmethod
    def restart(
        self, services: list[str], on_ready: ReadyCallback | None = None
    ) -> StackStatus: ...

    @abc.abstractmethod
    def scale(
        self, service: str, replicas: int, on_ready: ReadyCallback | None = None
    ) -> StackStatus: ...

    @abc.abstractmethod
    def kill(self, service: str) -> list[StoppedProcess]: ...

    @abc.abstractmethod
    def start(self, service: str, on_ready: ReadyCallback | None = None) -> StackStatus: ...

    @abc.abstractmethod
    def pause(self, service: str) -> list[int]: ...

    @abc.abstractmethod
    def resume(self, service: str) -> list[int]: ...

    @abc.abstractmethod
    def logs(
        self, service: str | None = None, tail: int = 50, follow: bool = False
    ) -> Iterator[str]: ...

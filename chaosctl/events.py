"""The one event type of chaosctl, and delivery that no listener can break.

The playbook engine, the game day and the runtime backends report progress as `Event`s; the
console, `--json`, the journal writer and the report writer are listeners. A listener is any
`Callable[[Event], None]`. `EventBus.emit` calls every listener in turn, each isolated: an
exception in one (a printer bug, a journal on a full disk) is logged with the listener's name
and recorded in `EventBus.failures`, and the other listeners and the run carry on. Only
`KeyboardInterrupt`/`SystemExit` pass through: Ctrl-C must still stop a run.

Listeners must treat `Event.data` as read-only: every listener receives the same dict.

This module sits at the bottom with `errors` and `domain`: it imports nothing of chaosctl.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

log = logging.getLogger(__name__)

Source = Literal["engine", "gameday", "runtime"]


@dataclass(frozen=True)
class Event:
    """Something that happened during a run.

    kind: what happened (engine: run_start | detect | step_start | step_end | verify_start |
      verify_check | verify_end | run_end; game day: phase | marker | baseline | waiting |
      remediated | replayed | done; runtime: the backend's progress kinds).
    source: which part emitted it. subject: what it is about (the playbook, the scenario,
    the service). at: wall-clock time (epoch seconds). data: JSON-able details.
    """

    kind: str
    source: Source
    at: float
    subject: str
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def now(cls, kind: str, source: Source, subject: str, data: dict[str, Any] | None = None
            ) -> Event:
        return cls(kind, source, time.time(), subject, dict(data or {}))


Listener = Callable[[Event], None]


@dataclass(frozen=True)
class ListenerFailure:
    """A listener raised while handling an event; the run went on without it."""

    listener: str
    kind: str
    subject: str
    error: str


def listener_name(listener: Listener) -> str:
    """A name for log lines: the function's or the listener class's qualified name."""
    target = getattr(listener, "__func__", listener)
    name = getattr(target, "__qualname__", None) or type(listener).__qualname__
    module = getattr(target, "__module__", None) or type(listener).__module__
    return f"{module}.{name}" if module else name


class EventBus:
    """Listeners in the order they were added; `emit` delivers to each, isolated."""

    def __init__(self, listeners: Iterable[Listener] = ()) -> None:
        self._listeners: list[Listener] = list(listeners)
        self.failures: list[ListenerFailure] = []

    @property
    def listeners(self) -> tuple[Listener, ...]:
        return tuple(self._listeners)

    def add(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def emit(self, event: Event) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception as exc:  # noqa: BLE001 - a listener's bug must not stop a run
                failure = ListenerFailure(listener_name(listener), event.kind, event.subject,
                                          f"{type(exc).__name__}: {exc}")
                self.failures.append(failure)
                # One line by default (the CLI's stderr stays readable); the traceback when
                # logging is verbose enough to want it.
                log.error("event listener %s failed on %s event for %s: %s; continuing",
                          failure.listener, failure.kind, failure.subject or "-",
                          failure.error, exc_info=log.isEnabledFor(logging.DEBUG))

    def publish(self, kind: str, source: Source, subject: str,
                data: dict[str, Any] | None = None) -> Event:
        """Build an event stamped now, emit it, and return it."""
        event = Event.now(kind, source, subject, data)
        self.emit(event)
        return event

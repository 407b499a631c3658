"""The undo guard: `python -m chaosctl.chaos.undo_guard ...`, started by the injector when a
service took a POST /chaos/config but did not answer it in time.

A paused (SIGSTOPped) or overloaded service accepts the connection in the kernel and answers
nothing, so the injector cannot know whether the fault will be set; the request stays queued
and lands whenever the process runs again, with a fresh TTL. The injector reports that the
fault is not in effect, so this guard makes that true: while the processes that may still
hold the request live, it waits until the service answers again, then deletes the key (only
if it still holds the value we asked for, so a later inject of another value is left alone),
keeps watching for a few seconds in case the request is handled just after, and writes one
audit line saying whether the request had landed. It records itself like every chaos worker,
so `stack down` stops it and `chaos status` shows it.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from typing import Any

from chaosctl.chaos import audit
from chaosctl.clients.http import http_get
from chaosctl.clients.redis import RedisError, WatchError, stack_redis
from chaosctl.config import Settings
from chaosctl.runtime.procs import RunDir
from chaosctl.runtime.workers import WorkerStore, self_record

KIND = "undo"
POLL_S = 0.5
SETTLE_S = 3.0  # after the service answers: a queued request may be handled just after ours
PROBE_TIMEOUT_S = 2.0


def delete_if_ours(settings: Settings, key: str, value: float) -> str | None:
    """Delete `key` if it holds `value` (atomically, WATCH/MULTI); the deleted value or None."""
    client = stack_redis(settings)
    try:
        with client.pipeline() as pipe:
            pipe.watch(key)
            current = pipe.get(key)
            try:
                ours = current is not None and float(current) == float(value)
            except ValueError:
                ours = False
            if not ours:
                pipe.unwatch()
                return None
            pipe.multi()
            pipe.delete(key)
            try:
                pipe.execute()
            except WatchError:  # changed under us: someone set it again, leave it
                return None
            return str(current)
    finally:
        client.close()


def _service_answers(settings: Settings, service: str) -> bool:
    """Any HTTP answer counts: the process runs and handles requests again."""
    return http_get(f"{settings.url(service)}/chaos/config", PROBE_TIMEOUT_S) is not None


def _processes(settings: Settings, service: str) -> list[Any]:
    return [r for r in RunDir(settings.home / "run").records()[0]
            if r.name == service and r.is_ours()]


def guard(settings: Settings, service: str, key: str, value: float, until: float,
          stop: threading.Event) -> tuple[str, str]:
    """Wait and undo; (audit outcome, detail)."""
    procs = _processes(settings, service)  # the ones that may hold the queued request
    landed: list[str] = []

    def sweep() -> None:
        try:
            deleted = delete_if_ours(settings, key, value)
        except RedisError:
            return  # Redis down: try again on the next round
        if deleted is not None:
            landed.append(deleted)

    sweep()  # it may have been handled already, just too late for the injector
    while not stop.is_set() and time.time() < until:
        alive = [r for r in procs if r.is_ours()]
        if not alive:
            sweep()
            return audit.OK, (f"{service} exited with the request unanswered; {key} "
                              + ("had landed and was deleted" if landed else "was never set"))
        if not any(r.is_paused() for r in alive) and _service_answers(settings, service):
            settle_until = time.monotonic() + SETTLE_S
            while time.monotonic() < settle_until and not stop.is_set():
                sweep()
                stop.wait(POLL_S)
            sweep()
            return audit.OK, (f"{service} answered again; the timed-out request "
                              + (f"had landed ({key}={landed[0]}) and was deleted" if landed
                                 else f"did not set {key}"))
        sweep()
        stop.wait(POLL_S)
    sweep()
    why = "stopped" if stop.is_set() else "gave up at its deadline"
    return audit.FAILED, (f"{why} before {service} answered again; the request queued in "
                          f"{service} may still set {key} when it runs")


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_json(args.settings)
    store = WorkerStore(settings.home)
    record = self_record(args.id, KIND, args.fault, args.service, args.until,
                         {"key": args.key, "value": args.value})
    store.write(record)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        outcome, detail = guard(settings, args.service, args.key, args.value, args.until, stop)
    except Exception as exc:  # noqa: BLE001 - written to the audit log: nobody else sees it
        outcome, detail = audit.FAILED, f"{type(exc).__name__}: {exc}"
    finally:
        store.remove(record.id)
    audit.append(settings.home, action="undo", fault=args.fault, target=args.key,
                 value=args.value, outcome=outcome, command=f"chaosctl worker {args.id}",
                 detail=detail)
    return 0 if outcome == audit.OK else 1


def command(worker_id: str, settings: Settings, *, fault: str, service: str, key: str,
            value: float, until: float) -> list[str]:
    """The argv that starts a guard (used by the injector)."""
    return [sys.executable, "-m", "chaosctl.chaos.undo_guard", "--id", worker_id,
            "--fault", fault, "--service", service, "--key", key, "--value", repr(value),
            "--until", repr(until), "--settings", settings.to_json()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chaosctl.chaos.undo_guard")
    parser.add_argument("--id", required=True)
    parser.add_argument("--fault", required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--value", type=float, required=True)
    parser.add_argument("--until", type=float, required=True, help="epoch seconds")
    parser.add_argument("--settings", required=True, help="Settings as JSON")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())


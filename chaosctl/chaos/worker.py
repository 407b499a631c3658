"""Detached chaos workers: `python -m chaosctl.chaos.worker {overload|retry-storm|revert} ...`.

Started by the injector in a new session (so Ctrl-C or SIGKILL of the CLI does not reach
them), each worker records itself in the state dir first (see runtime.workers), ends by itself
(duration, request cap, or the revert time), removes its record on the way out and writes one
audit line saying what it did. SIGTERM (from `chaos clear`) ends it early: a burst stops
sending, a reverter exits without acting (clear does the undo itself).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import threading
import time
from typing import Any

from chaosctl.chaos import audit
from chaosctl.config import Settings
from chaosctl.runtime import get_backend
from chaosctl.runtime.workers import WorkerStore, self_record

STATS_EVERY_S = 1.0


def _settings(raw: str) -> Settings:
    return Settings.from_json(raw)


def run_load(args: argparse.Namespace, settings: Settings) -> int:
    # Imported here: the load generator brings httpx (0.25-0.38 s of import, python -X
    # importtime), which the reverter workers never use, and `inject service-down` waits
    # for its reverter to record itself.
    from chaosctl.chaos.load import LoadConfig, LoadGenerator, retry_failed_orders

    store = WorkerStore(settings.home)
    params = {"rps": args.rps, "for_s": args.for_s, "max_requests": args.max_requests,
              "retries": args.retries}
    record = self_record(args.id, args.kind, args.kind, "gateway",
                         time.time() + args.for_s, params)
    store.write(record)
    storm = args.kind == "retry-storm"
    config = LoadConfig(base_url=settings.url("gateway"), rps=args.rps,
                        duration_s=args.for_s, max_requests=args.max_requests,
                        retries=args.retries if storm else 0,
                        retry_on=retry_failed_orders if storm else None)
    generator = LoadGenerator(config)
    signal.signal(signal.SIGTERM, lambda *_: generator.stop())
    signal.signal(signal.SIGINT, lambda *_: generator.stop())
    done = threading.Event()

    def publish() -> None:
        # Live stats for `chaos status`; stops before the record is removed.
        while not done.wait(STATS_EVERY_S):
            record.stats = generator.stats()
            if store.file(record.id).exists():
                store.write(record)

    publisher = threading.Thread(target=publish, daemon=True)
    publisher.start()
    stats = None
    try:
        stats = asyncio.run(generator.run())
    finally:
        done.set()
        publisher.join(timeout=2)
        if stats is None:  # the run raised: nothing to audit, the record still goes
            store.remove(record.id)
    try:
        audit.append(settings.home, action="finish", fault=args.kind, target="gateway",
                     value=args.rps, outcome=audit.OK, command=f"chaosctl worker {args.id}",
                     detail=json.dumps(stats, sort_keys=True))
    finally:
        store.remove(record.id)
    return 0


def run_revert(args: argparse.Namespace, settings: Settings) -> int:
    store = WorkerStore(settings.home)
    record = self_record(args.id, "revert", args.fault, args.service,
                         time.time() + args.after_s, {"action": args.action})
    store.write(record)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if stop.wait(args.after_s):
        store.remove(record.id)  # cleared early: `chaos clear` undoes the fault itself
        return 0
    backend = get_backend(settings)
    outcome, detail = audit.OK, ""
    try:
        if args.action == "start":
            backend.start(args.service)
        else:
            backend.resume(args.service)
    except Exception as exc:  # noqa: BLE001 - recorded in the audit log, nothing to show it to
        outcome, detail = audit.FAILED, f"{type(exc).__name__}: {exc}"
    # The audit line is written before the worker record goes: whoever sees the worker gone
    # (chaos status, a script waiting on it) also finds what it did in the audit log.
    try:
        audit.append(settings.home, action="revert", fault=args.fault, target=args.service,
                     value=args.action, outcome=outcome, command=f"chaosctl worker {args.id}",
                     detail=detail or f"{args.action} {args.service} after {args.after_s:g}s")
    finally:
        store.remove(record.id)
    return 0 if outcome == audit.OK else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chaosctl.chaos.worker")
    sub = parser.add_subparsers(dest="kind", required=True)
    for kind in ("overload", "retry-storm"):
        p = sub.add_parser(kind)
        p.add_argument("--rps", type=float, required=True)
        p.add_argument("--for-s", type=float, required=True)
        p.add_argument("--max-requests", type=int, required=True)
        p.add_argument("--retries", type=int, default=0)
    p = sub.add_parser("revert")
    p.add_argument("--action", choices=("start", "resume"), required=True)
    p.add_argument("--service", required=True)
    p.add_argument("--fault", required=True)
    p.add_argument("--after-s", type=float, required=True)
    for p in sub.choices.values():
        p.add_argument("--id", required=True)
        p.add_argument("--settings", required=True, help="Settings as JSON")
    args = parser.parse_args(argv)
    settings = _settings(args.settings)
    if args.kind == "revert":
        return run_revert(args, settings)
    return run_load(args, settings)


def spawn_command(kind: str, worker_id: str, settings: Settings, **options: Any) -> list[str]:
    """The argv that starts a worker (used by the injector)."""
    argv = [sys.executable, "-m", "chaosctl.chaos.worker", kind]
    for name, value in options.items():
        argv += [f"--{name.replace('_', '-')}", str(value)]
    return argv + ["--id", worker_id, "--settings", settings.to_json()]


if __name__ == "__main__":
    sys.exit(main())

"""The halt: `chaos clear [TARGET] | --all`, then verify that nothing selected is left.

Idempotent and order-aware: chaos workers are stopped first (so a reverter cannot race us and
a burst stops adding load), then chaos keys are deleted (through the services' DELETE
/chaos/config, or straight in Redis when a service does not answer), paused services are
resumed, killed ones started again; finally the status is read again and anything still active
makes the result not ok (exit 1).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from chaosctl.chaos import audit
from chaosctl.chaos.status import ActiveFault, ChaosStatus, collect
from chaosctl.chaos.undo_guard import KIND as GUARD_KIND
from chaosctl.clients.http import http_client
from chaosctl.clients.redis import RedisError, stack_redis
from chaosctl.config import Settings
from chaosctl.domain import CHAOS_KEYS, FAULTS, REDIS_FAULTS, SERVICES
from chaosctl.errors import InvalidInputError
from chaosctl.runtime import get_backend
from chaosctl.runtime.workers import WorkerRecord, WorkerStore

HTTP_TIMEOUT_S = 2.0
GUARD_SETTLE_S = 15.0  # how long clear waits for an undo guard of a service it resumed
ALL_KEYS = CHAOS_KEYS
TARGETS: tuple[str, ...] = (*FAULTS, *SERVICES)


@dataclass(frozen=True)
class Selector:
    """Which active faults a clear TARGET covers."""

    target: str  # "all", a fault name or a service name
    keys: frozenset[str]
    killed: frozenset[str]  # services to start again
    paused: frozenset[str]  # services to resume
    worker: Callable[[WorkerRecord], bool]

    def covers(self, item: ActiveFault) -> bool:
        if item.kind == "key":
            return item.target in self.keys
        if item.kind == "killed":
            return item.service in self.killed
        if item.kind == "paused":
            return item.service in self.paused
        return True  # workers are filtered by id in `clear`


def selector(target: str | None) -> Selector:
    """The selector for TARGET (None: everything); InvalidInputError naming valid targets."""
    services = frozenset(SERVICES)
    none: frozenset[str] = frozenset()
    if target is None or target == "all":
        return Selector("all", frozenset(ALL_KEYS), services, services, lambda w: True)
    if target in REDIS_FAULTS:
        return Selector(target, frozenset({REDIS_FAULTS[target].key}), none, none,
                        lambda w: False)
    if target in ("service-down", "notifications-down"):
        which = frozenset({"notifications"}) if target == "notifications-down" else services
        return Selector(target, none, which, none,
                        lambda w: w.kind == "revert" and w.params.get("action") == "start"
                        and w.target in which)
    if target == "service-hang":
        return Selector(target, none, none, services,
                        lambda w: w.kind == "revert" and w.params.get("action") == "resume")
    if target == "overload":
        return Selector(target, none, none, none, lambda w: w.kind == "overload")
    if target == "retry-storm":
        return Selector(target, frozenset({REDIS_FAULTS["payment-errors"].key}), none, none,
                        lambda w: w.kind == "retry-storm")
    if target in SERVICES:
        keys = frozenset(s.key for s in REDIS_FAULTS.values() if s.service == target)
        one = frozenset({target})
        return Selector(target, keys, one, one, lambda w: w.target == target)
    raise InvalidInputError(
        f"unknown clear target {target!r}; valid: --all, a fault ({', '.join(FAULTS)}) "
        f"or a service ({', '.join(SERVICES)})")


@dataclass
class ClearResult:
    target: str
    actions: list[dict[str, str]] = field(default_factory=list)  # {action, target, how}
    remaining: list[ActiveFault] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.remaining and not self.problems

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "ok": self.ok, "actions": self.actions,
                "remaining": [r.to_json() for r in self.remaining],
                "problems": list(self.problems), "elapsed_s": round(self.elapsed_s, 3)}


def delete_keys(settings: Settings, keys: list[str]) -> list[dict[str, str]]:
    """Delete chaos keys; per service through DELETE /chaos/config, else in Redis directly.

    Returns actions; raises RedisError when the Redis fallback is needed and fails.
    """
    actions: list[dict[str, str]] = []
    fallback: list[str] = []
    for service in ("payments", "inventory"):
        mine = [s for s in REDIS_FAULTS.values() if s.service == service and s.key in keys]
        if not mine:
            continue
        url = f"{settings.url(service)}/chaos/config"
        everything = len(mine) == sum(s.service == service for s in REDIS_FAULTS.values())
        queries = [None] if everything else [s.field for s in mine]
        try:
            with http_client(timeout=HTTP_TIMEOUT_S) as client:
                for fault in queries:
                    response = client.delete(url, params={"fault": fault} if fault else None)
                    response.raise_for_status()
        except httpx.HTTPError as exc:
            fallback += [s.key for s in mine]
            actions.append({"action": "delete_keys", "target": service,
                            "how": f"{service} did not answer DELETE /chaos/config "
                                   f"({type(exc).__name__}); deleting in Redis directly"})
            continue
        actions.append({"action": "delete_keys", "target": service,
                        "how": f"DELETE /chaos/config ({', '.join(s.key for s in mine)})"})
    if fallback:
        client = stack_redis(settings)
        try:
            client.delete(*fallback)
        finally:
            client.close()
        actions.append({"action": "delete_keys", "target": "redis",
                        "how": f"deleted in Redis directly: {', '.join(fallback)}"})
    return actions


def clear(settings: Settings, target: str | None = None) -> ClearResult:
    """Undo every active fault TARGET covers (None: all), then verify. Audited."""
    started = time.monotonic()
    sel = selector(target)
    result = ClearResult(sel.target)
    store = WorkerStore(settings.home)

    # 1. Workers first: a reverter must not race our own undo; bursts stop adding load.
    # Undo guards are left running: they are themselves an undo (of an inject that timed out
    # against a paused service) and their request may land only after we resume it below.
    for rec in store.live():
        if sel.worker(rec) and rec.kind != GUARD_KIND:
            how = store.stop(rec)
            result.actions.append({"action": "stop_worker", "target": rec.id,
                                   "how": f"{rec.kind} pid {rec.pid}: {how}"})

    # 2. Chaos keys (only when any is set: an idle clear costs one Redis round trip).
    before = collect(settings)
    keys = sorted(f.target for f in before.faults if f.kind == "key" and sel.covers(f))
    if keys:
        try:
            result.actions += delete_keys(settings, keys)
        except RedisError as exc:
            result.problems.append(f"Redis is unreachable ({exc}); could not delete "
                                   f"{', '.join(keys)}")
    # 3. Paused services resume; 4. killed services start (with their replica counts).
    backend = get_backend(settings)
    for item in before.faults:
        if item.kind not in ("paused", "killed") or not sel.covers(item):
            continue
        try:
            if item.kind == "paused":
                backend.resume(item.service)
                result.actions.append({"action": "resume", "target": item.service,
                                       "how": "SIGCONT every replica"})
            else:
                backend.start(item.service)
                result.actions.append({"action": "start", "target": item.service,
                                       "how": "started again and ready"})
        except Exception as exc:  # noqa: BLE001 - reported, and the verify step catches it
            result.problems.append(f"could not {('resume' if item.kind == 'paused' else 'start')}"
                                   f" {item.service}: {exc}")

    _wait_for_guards(store, {a["target"] for a in result.actions
                             if a["action"] in ("resume", "start")})
    # 5. Verify.
    after = collect(settings)
    result.problems += [p for p in after.problems if p not in result.problems]
    live_ids = {rec.id for rec in store.live() if sel.worker(rec) and rec.kind != GUARD_KIND}
    result.remaining = [f for f in after.faults
                        if (f.target in live_ids if f.kind == "worker" else sel.covers(f))]
    result.elapsed_s = time.monotonic() - started
    audit.append(settings.home, action="clear", fault=None if target is None else target,
                 target=sel.target, outcome=audit.OK if result.ok else audit.FAILED,
                 detail="; ".join([*(f"{a['action']} {a['target']}" for a in result.actions),
                                   *result.problems,
                                   *(f"still active: {r.fault} {r.target}"
                                     for r in result.remaining)]) or "nothing was active")
    return result


def _wait_for_guards(store: WorkerStore, services: set[str]) -> None:
    """Let undo guards of the services just resumed see their timed-out request land and
    delete its key, so the verify below does not report a key that is about to go."""
    deadline = time.monotonic() + GUARD_SETTLE_S
    while time.monotonic() < deadline and any(
            w.kind == GUARD_KIND and w.target in services for w in store.live()):
        time.sleep(0.1)


def verify_clean(settings: Settings) -> ChaosStatus:
    """The current status (the caller checks `.clean`)."""
    return collect(settings)


def drop_keys_for_down(settings: Settings) -> list[str]:
    """Delete every chaos key straight in Redis before `stack down` stops it.

    Redis persists to an append-only file, so without this a fault injected before `down`
    would be live again after the next `up` (until its TTL). Best effort: a Redis that is
    already down has nothing to delete now, and its keys keep their TTL. Audited when it
    deleted anything.
    """
    client = stack_redis(settings)
    try:
        present = [key for key in ALL_KEYS if client.exists(key)]
        if present:
            client.delete(*present)
    except RedisError:
        return []
    finally:
        client.close()
    if present:
        audit.append(settings.home, action="clear", fault=None, target="all",
                     outcome=audit.OK, detail=f"stack down: deleted {', '.join(present)}")
    return present

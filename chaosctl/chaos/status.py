"""What chaos is active right now: chaos keys in Redis (value, TTL left), killed and paused
services (from the runtime), and running chaos workers; each with where it came from (the
latest matching inject in the audit log)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from chaosctl.chaos import audit
from chaosctl.clients.redis import RedisError, stack_redis
from chaosctl.config import Settings
from chaosctl.domain import REDIS_FAULTS, SERVICES
from chaosctl.runtime import get_backend
from chaosctl.runtime.workers import WorkerRecord, WorkerStore

KEY_TO_FAULT = {spec.key: name for name, spec in REDIS_FAULTS.items()}
REDIS_TIMEOUT_S = 1.0


@dataclass
class ActiveFault:
    """One thing that is still broken on purpose."""

    kind: str  # key | killed | paused | worker
    fault: str  # catalogue name: payment-errors, service-down, overload, ...
    target: str  # the Redis key, the service, or the worker id
    service: str  # the service it affects
    value: Any = None  # key value; worker rps / revert action
    ttl_s: float | None = None  # seconds until it ends by itself (None: unknown / never)
    detail: str = ""
    source: dict[str, Any] | None = None  # time, user, command of the inject (audit)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ChaosStatus:
    redis: str  # ok | unreachable
    faults: list[ActiveFault] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what could not be checked

    @property
    def clean(self) -> bool:
        return not self.faults and not self.problems

    def to_json(self) -> dict[str, Any]:
        return {"clean": self.clean, "redis": self.redis,
                "faults": [f.to_json() for f in self.faults], "problems": list(self.problems)}


def read_keys(settings: Settings) -> dict[str, tuple[str, int]]:
    """{key: (value, ttl_s)} for every chaos key that is set. Raises redis errors."""
    client = stack_redis(settings, timeout=REDIS_TIMEOUT_S)
    try:
        pipe = client.pipeline(transaction=False)
        keys = list(KEY_TO_FAULT)
        for key in keys:
            pipe.get(key)
            pipe.ttl(key)
        raw = pipe.execute()
    finally:
        client.close()
    return {key: (raw[2 * i], int(raw[2 * i + 1])) for i, key in enumerate(keys)
            if raw[2 * i] is not None}


def _number(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def worker_fault(rec: WorkerRecord) -> ActiveFault:
    ends = None if rec.ends_at is None else max(0.0, round(rec.ends_at - time.time(), 1))
    if rec.kind == "undo":  # see chaos.undo_guard
        detail = (f"undo guard pid {rec.pid}: an inject timed out against {rec.target}; "
                  f"deletes {rec.params.get('key')} if the queued request sets it once "
                  f"{rec.target} runs again")
        return ActiveFault("worker", rec.fault, rec.id, rec.target, rec.params.get("value"),
                           ends, detail)
    if rec.kind == "revert":
        verb = "start" if rec.params.get("action") == "start" else "resume"
        detail = f"reverter pid {rec.pid}: will {verb} {rec.target} in {ends}s"
        value: Any = rec.params.get("action")
    else:
        sent = (rec.stats or {}).get("sent", 0)
        detail = (f"{rec.kind} worker pid {rec.pid}: {rec.params.get('rps'):g} rps against "
                  f"the gateway, {sent} requests sent so far")
        value = rec.params.get("rps")
    return ActiveFault("worker", rec.fault if rec.kind == "revert" else rec.kind, rec.id,
                       rec.target, value, ends, detail)


def collect(settings: Settings, with_processes: bool = True) -> ChaosStatus:
    """Everything active; never raises for an unreachable Redis (it becomes a problem)."""
    result = ChaosStatus(redis="ok")
    history = audit.read(settings.home)
    try:
        keys = read_keys(settings)
    except RedisError as exc:
        result.redis = "unreachable"
        result.problems.append(
            f"Redis at {settings.host}:{settings.redis_port} is unreachable ({exc}); chaos keys "
            "cannot be read (they still expire by their TTL)")
        keys = {}
    for key, (value, ttl) in keys.items():
        fault = KEY_TO_FAULT[key]
        left = None if ttl < 0 else ttl
        detail = "no TTL: will not expire by itself" if ttl < 0 else f"expires in {ttl}s"
        result.faults.append(ActiveFault("key", fault, key, key.split(":")[1], _number(value),
                                         left, detail, _key_source(history, key, fault)))
    workers = WorkerStore(settings.home).live()
    reverters = {(w.target, w.params.get("action")): w for w in workers if w.kind == "revert"}
    if with_processes:
        result.faults += _process_faults(settings, reverters, history)
    for rec in workers:
        item = worker_fault(rec)
        item.source = audit.last_source(history, item.fault, rec.target)
        result.faults.append(item)
    return result


def _key_source(history: list[dict[str, Any]], key: str, fault: str) -> dict[str, Any] | None:
    source = audit.last_source(history, fault, key)
    if source is None and fault == "payment-errors":
        source = audit.last_source(history, "retry-storm", None)
    return source


def _process_faults(settings: Settings, reverters: dict[tuple[str, Any], WorkerRecord],
                    history: list[dict[str, Any]]) -> list[ActiveFault]:
    found: list[ActiveFault] = []
    seen: set[tuple[str, str]] = set()
    for proc in get_backend(settings).status().processes:
        if proc.name not in SERVICES:
            continue  # redis / prometheus down is not a fault chaosctl injects
        if proc.health == "killed":
            kind, action = "killed", "start"
        elif proc.paused:
            kind, action = "paused", "resume"
        else:
            continue
        if (proc.name, kind) in seen:
            continue  # one entry per service, not per replica
        seen.add((proc.name, kind))
        rev = reverters.get((proc.name, action))
        if kind == "killed":
            fault = rev.fault if rev else (
                "notifications-down" if proc.name == "notifications" else "service-down")
            detail = "all replicas SIGKILLed"
        else:
            fault, detail = "service-hang", "SIGSTOPped"
        left = None if rev is None or rev.ends_at is None else max(
            0.0, round(rev.ends_at - time.time(), 1))
        detail += (f"; back by itself in {left}s" if left is not None
                   else "; stays until `chaosctl chaos clear` or `chaosctl stack start`")
        source = audit.last_source(history, fault, proc.name)
        found.append(ActiveFault(kind, fault, proc.name, proc.name, kind, left, detail, source))
    return found

"""Apply a validated fault: chaos keys through the services' /chaos/config, signals through
the runtime backend, bursts and storms as detached workers. Never prints.

Ordering rule: whatever brings the stack back (a reverter) is running and recorded before
the fault itself is applied, so a chaosctl killed half-way never leaves a fault without its
end; and if applying fails, what was started is undone before the error is raised.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from chaosctl.chaos import audit, undo_guard
from chaosctl.chaos.catalogue import FaultRequest, validate
from chaosctl.chaos.errors import InjectionFailedError
from chaosctl.chaos.halt import delete_keys
from chaosctl.chaos.worker import spawn_command
from chaosctl.clients.http import http_post
from chaosctl.config import Settings
from chaosctl.domain import REDIS_FAULTS, RedisFault
from chaosctl.errors import ChaosctlError
from chaosctl.runtime import get_backend
from chaosctl.runtime.procs import RunDir
from chaosctl.runtime.workers import WorkerRecord, WorkerStore, new_id

HTTP_TIMEOUT_S = 3.0
SPAWN_TIMEOUT_S = 15.0
GUARD_MIN_S = 3600.0  # an undo guard waits at least this long for a paused service
GUARD_WAIT_S = 10.0  # how long a new inject waits for a guard on the same key to finish


class UnansweredRequestError(InjectionFailedError):
    """The request reached the service (the connection was accepted) but got no answer: it
    may still be handled later. Raised by `set_key`, turned into an undo by `apply`."""


@dataclass
class InjectResult:
    request: FaultRequest
    dry_run: bool
    actions: list[dict[str, Any]] = field(default_factory=list)  # what was (or would be) done
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> {value, ttl_s}
    worker: WorkerRecord | None = None
    expires_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "fault": self.request.fault,
            "dry_run": self.dry_run,
            "request": self.request.summary(),
            "actions": self.actions,
            "keys": self.keys,
            "worker": self.worker.to_json() if self.worker else None,
            "expires_at": self.expires_at,
        }


# -- planning (what --dry-run prints, and what apply does) -------------------------------------
def plan(req: FaultRequest, settings: Settings) -> list[dict[str, Any]]:
    """The exact actions, in order, as {"action", "target", "detail"}."""
    steps: list[dict[str, Any]] = []

    def key_step(spec: RedisFault, value: float) -> None:
        body = {spec.field: _wire(spec, value), "ttl_s": req.ttl_s}
        steps.append({"action": "set_key", "target": spec.key,
                      "detail": f"POST {settings.url(spec.service)}/chaos/config {body} -> "
                                f"{spec.key}={_wire(spec, value)} with TTL {req.ttl_s}s"})

    spec = req.redis_fault
    if spec is not None:
        key_step(spec, float(req.value or 0))
    elif req.fault in ("service-down", "notifications-down", "service-hang"):
        hang = req.fault == "service-hang"
        after = req.for_s or req.ttl_s
        when = f"after {after:g}s" + (" (--for 0: at the TTL unless cleared first)"
                                      if not req.for_s else "")
        steps.append({"action": "spawn_reverter", "target": req.service,
                      "detail": f"start a detached reverter that will "
                                f"{'SIGCONT' if hang else 'start'} {req.service} {when}"})
        steps.append({"action": "pause" if hang else "kill", "target": req.service,
                      "detail": f"{'SIGSTOP' if hang else 'SIGKILL'} every replica of "
                                f"{req.service}{_pids(settings, req.service)}"})
    else:
        if req.fault == "retry-storm":
            key_step(REDIS_FAULTS["payment-errors"], float(req.value or 0))
        p = req.params
        extra = (f", each failed order re-POSTed at once up to {p['retries']} times"
                 if req.fault == "retry-storm" else "")
        steps.append({"action": "spawn_load", "target": "gateway",
                      "detail": f"start a detached {req.fault} worker: {p['rps']:g} orders/s "
                                f"open-loop to {settings.url('gateway')}/orders for "
                                f"{req.for_s:g}s, at most {p['max_requests']} requests{extra}"})
    return steps


def _wire(spec: RedisFault, value: float) -> float | int:
    return float(value) if spec.kind == "rate" else int(value)


def _pids(settings: Settings, service: str) -> str:
    pids = [r.pid for r in RunDir(settings.home / "run").records()[0]
            if r.name == service and r.is_ours()]
    return f" (pids {', '.join(map(str, pids))})" if pids else " (not running now)"


# -- applying ----------------------------------------------------------------------------------
def set_key(settings: Settings, spec: RedisFault, value: float, ttl_s: int) -> dict[str, Any]:
    """POST /chaos/config and check the answer shows the value with a TTL; {value, ttl_s}."""
    token = settings.admin_token()
    if not token:
        raise InjectionFailedError(
            f"no admin token in {settings.admin_token_file}; nothing was set",
            hint="start the stack with `chaosctl stack up` (it writes the token)")
    url = f"{settings.url(spec.service)}/chaos/config"
    try:
        response = http_post(url, json={spec.field: _wire(spec, value), "ttl_s": ttl_s},
                             headers={"Authorization": f"Bearer {token}"},
                             timeout=HTTP_TIMEOUT_S)
    except (httpx.TimeoutException, httpx.ReadError, httpx.WriteError,
            httpx.RemoteProtocolError) as exc:
        if isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout)):
            raise _unreachable(spec, url, exc) from exc  # never connected: nothing was sent
        # Connected, maybe sent, no answer: a SIGSTOPped service looks exactly like this.
        raise UnansweredRequestError(
            f"{spec.service} accepted POST {url} but did not answer within "
            f"{HTTP_TIMEOUT_S:g}s ({type(exc).__name__}; paused or overloaded?)") from exc
    except httpx.HTTPError as exc:
        raise _unreachable(spec, url, exc) from exc
    if response.status_code != 200:
        raise InjectionFailedError(
            f"{spec.service} refused the fault: HTTP {response.status_code} "
            f"{response.text[:200]}; nothing was set")
    state = response.json().get("faults", {}).get(spec.field, {})
    if state.get("value") is None or not state.get("ttl_s"):
        raise InjectionFailedError(f"{spec.key} is not visible after setting it: {state}")
    return {"value": state["value"], "ttl_s": state["ttl_s"]}


def _unreachable(spec: RedisFault, url: str, exc: Exception) -> InjectionFailedError:
    return InjectionFailedError(
        f"{spec.service} is unreachable at {url} ({type(exc).__name__}); nothing was set",
        hint=f"check `chaosctl stack status`; start it with `chaosctl stack start "
             f"{spec.service}`")


def set_key_or_undo(settings: Settings, fault: str, spec: RedisFault, value: float,
                    ttl_s: int) -> dict[str, Any]:
    """`set_key`, and when the service took the request but never answered, undo it.

    The request may still be handled when the service runs again (a paused service queues
    it in the kernel), so saying "nothing was set" is only true once someone makes it so: an
    undo guard deletes the key once the service answers again, and the error says so.
    """
    _wait_for_guards(settings, spec.key)
    try:
        return set_key(settings, spec, value, ttl_s)
    except UnansweredRequestError as exc:
        raise InjectionFailedError(f"{exc}; {_undo(settings, fault, spec, value, ttl_s)}",
                                   hint="see `chaosctl chaos status` and `chaosctl chaos log`; "
                                        f"inject again once {spec.service} answers") from exc


def _undo(settings: Settings, fault: str, spec: RedisFault, value: float, ttl_s: int) -> str:
    """Start the undo guard; describe what will happen (the error message's second half)."""
    wire = _wire(spec, value)
    until = time.time() + max(float(ttl_s), GUARD_MIN_S)
    guard_id = new_id(undo_guard.KIND)
    try:
        guard = _spawn(settings, guard_id, undo_guard.KIND, undo_guard.command(
            guard_id, settings, fault=fault, service=spec.service, key=spec.key,
            value=float(wire), until=until))
    except InjectionFailedError as exc:
        # No guard: delete what may already be there, and be plain about what may follow.
        try:
            undo_guard.delete_if_ours(settings, spec.key, float(wire))
        except Exception:  # noqa: BLE001, S110 - the message below already says it may land
            pass
        return (f"the fault is NOT confirmed and the undo guard failed to start ({exc}); the "
                f"queued request may still set {spec.key}={wire} when {spec.service} runs "
                "again: clear it then with `chaosctl chaos clear`")
    return (f"the fault is not in effect: undo guard {guard.id} (pid {guard.pid}) deletes "
            f"{spec.key} if the queued request sets it once {spec.service} runs again")


def _wait_for_guards(settings: Settings, key: str) -> None:
    """A guard still undoing an earlier timed-out request for `key` would delete this one's
    value if it is the same; give it time to finish (it does once the service answers)."""
    store = WorkerStore(settings.home)
    deadline = time.monotonic() + GUARD_WAIT_S
    while time.monotonic() < deadline and any(
            w.kind == undo_guard.KIND and w.params.get("key") == key for w in store.live()):
        time.sleep(0.1)


def spawn_worker(settings: Settings, kind: str, **options: Any) -> WorkerRecord:
    """Start a detached chaos worker and wait until it has recorded itself; raise if it died."""
    worker_id = new_id(kind)
    return _spawn(settings, worker_id, kind, spawn_command(kind, worker_id, settings, **options))


def _spawn(settings: Settings, worker_id: str, kind: str, argv: list[str]) -> WorkerRecord:
    store = WorkerStore(settings.home)
    logs = settings.home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"chaos-{worker_id}.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own module, fixed argv
            argv, stdin=subprocess.DEVNULL,
            stdout=out, stderr=out, cwd=settings.home, start_new_session=True)
    deadline = time.monotonic() + SPAWN_TIMEOUT_S
    while time.monotonic() < deadline:
        record = store.get(worker_id)
        if record is not None:
            return record
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    if proc.poll() is None:
        proc.kill()
        proc.wait(5)
    tail = log.read_text(errors="replace")[-800:] if log.exists() else ""
    raise InjectionFailedError(f"the {kind} worker did not start; its log {log} ends:\n{tail}")


def apply(req: FaultRequest, settings: Settings) -> InjectResult:
    result = InjectResult(req, dry_run=False, actions=plan(req, settings))
    store = WorkerStore(settings.home)
    spec = req.redis_fault
    if spec is not None:
        result.keys[spec.key] = set_key_or_undo(settings, req.fault, spec,
                                                float(req.value or 0), req.ttl_s)
        result.expires_at = time.time() + req.ttl_s
        return result
    if req.fault in ("service-down", "notifications-down", "service-hang"):
        hang = req.fault == "service-hang"
        backend = get_backend(settings)
        after = req.for_s or float(req.ttl_s)
        reverter = spawn_worker(settings, "revert", action="resume" if hang else "start",
                                service=req.service, fault=req.fault, after_s=after)
        try:
            if hang:
                backend.pause(str(req.service))
            else:
                backend.kill(str(req.service))
        except BaseException:
            store.stop(reverter)  # the fault did not happen: no revert to wait for
            raise
        result.worker, result.expires_at = reverter, time.time() + after
        return result
    if req.fault == "retry-storm":
        errors = REDIS_FAULTS["payment-errors"]
        result.keys[errors.key] = set_key_or_undo(settings, req.fault, errors,
                                                  float(req.value or 0), req.ttl_s)
    try:
        result.worker = spawn_worker(settings, req.fault, rps=req.params["rps"], for_s=req.for_s,
                                     max_requests=req.params["max_requests"],
                                     retries=req.params.get("retries", 0))
    except BaseException:
        if req.fault == "retry-storm":
            _delete_key(settings, REDIS_FAULTS["payment-errors"])
        raise
    result.expires_at = time.time() + req.for_s
    return result


def _delete_key(settings: Settings, spec: RedisFault) -> None:
    delete_keys(settings, [spec.key])


def inject(settings: Settings, fault: str, *, dry_run: bool = False,
           **options: Any) -> InjectResult:
    """Validate, apply (or only plan, with dry_run) and audit one fault.

    Every outcome is audited, a refused value included; errors propagate to the CLI.
    """
    try:
        req = validate(fault, **options)
    except ChaosctlError as exc:
        audit.append(settings.home, action="inject", fault=fault, outcome=audit.REFUSED,
                     value=options.get("rate") or options.get("ms") or options.get("rps"),
                     target=options.get("service"), detail=str(exc))
        raise
    target = _audit_target(req)
    if dry_run:
        result = InjectResult(req, dry_run=True, actions=plan(req, settings))
        audit.append(settings.home, action="inject", fault=fault, outcome=audit.DRY_RUN,
                     value=_audit_value(req), ttl_s=req.ttl_s, target=target)
        return result
    try:
        result = apply(req, settings)
    except BaseException as exc:
        audit.append(settings.home, action="inject", fault=fault, outcome=audit.FAILED,
                     value=_audit_value(req), ttl_s=req.ttl_s, target=target,
                     detail=str(exc) or type(exc).__name__)
        raise
    detail = f"worker {result.worker.id} pid {result.worker.pid}" if result.worker else ""
    audit.append(settings.home, action="inject", fault=fault, outcome=audit.OK,
                 value=_audit_value(req), ttl_s=req.ttl_s, target=target, detail=detail)
    return result


def _audit_target(req: FaultRequest) -> str | None:
    spec = req.redis_fault
    return spec.key if spec is not None else req.service


def _audit_value(req: FaultRequest) -> Any:
    if req.fault in ("overload", "retry-storm"):
        return {"rps": req.params["rps"], "for_s": req.for_s, "rate": req.value,
                "retries": req.params.get("retries")}
    if req.value is not None:
        return req.value
    return {"for_s": req.for_s}

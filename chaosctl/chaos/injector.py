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

from chaosctl.chaos import audit
from chaosctl.chaos.active_state import WorkerRecord, WorkerStore, new_id
from chaosctl.chaos.catalogue import REDIS_FAULTS, FaultRequest, RedisFault, validate
from chaosctl.chaos.errors import InjectionFailedError
from chaosctl.config import Settings
from chaosctl.errors import ChaosctlError

HTTP_TIMEOUT_S = 3.0
SPAWN_TIMEOUT_S = 15.0


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
    from chaosctl.runtime.procs import RunDir

    pids = [r.pid for r in RunDir(settings.home / "run").records()[0]
            if r.name == service and r.is_ours()]
    return f" (pids {', '.join(map(str, pids))})" if pids else " (not running now)"


# -- applying ----------------------------------------------------------------------------------
def set_key(settings: Settings, spec: RedisFault, value: float, ttl_s: int) -> dict[str, Any]:
    """POST /chaos/config and check the answer shows the value with a TTL; {value, ttl_s}."""
    import httpx

    token = settings.admin_token()
    if not token:
        raise InjectionFailedError(
            f"no admin token in {settings.admin_token_file}; nothing was set",
            hint="start the stack with `chaosctl stack up` (it writes the token)")
    url = f"{settings.url(spec.service)}/chaos/config"
    try:
        response = httpx.post(url, json={spec.field: _wire(spec, value), "ttl_s": ttl_s},
                              headers={"Authorization": f"Bearer {token}"},
                              timeout=HTTP_TIMEOUT_S, trust_env=False)
    except httpx.HTTPError as exc:
        raise InjectionFailedError(
            f"{spec.service} is unreachable at {url} ({type(exc).__name__}); nothing was set",
            hint=f"check `chaosctl stack status`; start it with `chaosctl stack start "
                 f"{spec.service}`") from exc
    if response.status_code != 200:
        raise InjectionFailedError(
            f"{spec.service} refused the fault: HTTP {response.status_code} "
            f"{response.text[:200]}; nothing was set")
    state = response.json().get("faults", {}).get(spec.field, {})
    if state.get("value") is None or not state.get("ttl_s"):
        raise InjectionFailedError(f"{spec.key} is not visible after setting it: {state}")
    return {"value": state["value"], "ttl_s": state["ttl_s"]}


def spawn_worker(settings: Settings, kind: str, **options: Any) -> WorkerRecord:
    """Start a detached worker and wait until it has recorded itself; raise if it died."""
    from chaosctl.chaos.worker import spawn_command

    worker_id = new_id(kind)
    store = WorkerStore(settings.home)
    logs = settings.home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"chaos-{worker_id}.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own module, fixed argv
            spawn_command(kind, worker_id, settings, **options), stdin=subprocess.DEVNULL,
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
        result.keys[spec.key] = set_key(settings, spec, float(req.value or 0), req.ttl_s)
        result.expires_at = time.time() + req.ttl_s
        return result
    if req.fault in ("service-down", "notifications-down", "service-hang"):
        from chaosctl.runtime import get_backend

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
        result.keys[errors.key] = set_key(settings, errors, float(req.value or 0), req.ttl_s)
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
    from chaosctl.chaos.halt import delete_keys

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

"""Remediation actions: clear chaos, stop chaosctl load tests, restart/scale/restore services,
reset breakers, wait, advise.

Every action is idempotent: run twice, the second run finds nothing left to do and says so.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from chaosctl.chaos.halt import clear
from chaosctl.chaos.status import collect
from chaosctl.domain import SERVICE_FAULTS, SERVICES, ServiceName
from chaosctl.playbook.conditions import evaluate
from chaosctl.playbook.model import LOAD_TEST_KINDS, Condition, Duration
from chaosctl.playbook.registry import StepContext, StepFailed, action

CHAOS_FAULTS = SERVICE_FAULTS  # service -> its chaos fault fields (the catalogue's)
BREAKER_DOWNSTREAMS = ("orders", "payments", "inventory", "notifications")


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClearChaosParams(_Params):
    service: Literal["payments", "inventory"]
    fault: str | None = Field(default=None,
                              description="one fault; all of the service's if left out")

    @model_validator(mode="after")
    def _known_fault(self) -> ClearChaosParams:
        valid = CHAOS_FAULTS[self.service]
        if self.fault is not None and self.fault not in valid:
            raise ValueError(f"unknown fault {self.fault!r} for {self.service}; "
                             f"valid: {', '.join(valid)}")
        return self


@action("clear_chaos", ClearChaosParams, mutating=True,
        summary="delete chaos keys of a service (DELETE /chaos/config[?fault=...])")
def clear_chaos(ctx: StepContext, p: ClearChaosParams) -> Any:
    params = {"fault": p.fault} if p.fault else None
    response = ctx.http("DELETE", p.service, "/chaos/config", params=params)
    if response.status_code != 200:
        raise StepFailed(f"DELETE /chaos/config on {p.service} answered {response.status_code}: "
                         f"{response.text[:200]}")
    return response.json()


class StopLoadTestParams(_Params):
    kinds: list[Literal["overload", "retry-storm"]] = Field(
        default_factory=lambda: list(LOAD_TEST_KINDS), min_length=1,
        description="which chaosctl bursts to stop (default: both kinds)")

    @model_validator(mode="before")
    @classmethod
    def _one_or_many(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("kinds"), str):
            return {**data, "kinds": [data["kinds"]]}
        return data


@action("stop_load_test", StopLoadTestParams, mutating=True,
        summary="stop chaosctl's running load bursts (as `chaosctl chaos clear overload` / "
                "`retry-storm` does)")
def stop_load_test(ctx: StepContext, p: StopLoadTestParams) -> Any:
    """The runbook's "stop the load test", for bursts chaosctl started: through the halt, so
    a worker is signalled only after its PID is proven to be the same process, and audited.

    A retry-storm is cleared as the halt clears that fault: its burst AND the payments error
    key it set (the storm's other half; both belong to the same chaosctl test). Only kinds
    with a live worker are cleared, so nothing else is touched and a second run is a no-op.
    """
    active = collect(ctx.settings, with_processes=False)
    running = [f for f in active.faults if f.kind == "worker" and f.fault in p.kinds]
    if not running:
        return {"stopped": [], "note": f"no chaosctl {'/'.join(p.kinds)} burst running"}
    stopped: list[str] = []
    actions: list[dict[str, str]] = []
    notes: list[str] = []
    for kind in p.kinds:
        if not any(f.fault == kind for f in running):
            continue
        result = clear(ctx.settings, kind)
        actions += result.actions
        stopped += [a["target"] for a in result.actions if a["action"] == "stop_worker"]
        notes += result.problems
        # An overload burst is stopped once no worker remains; the halt's other problems
        # (e.g. Redis unreachable, so chaos keys cannot be read) do not concern it. A
        # retry-storm also needs its payments key deleted, so any problem fails it.
        if result.remaining or (kind == "retry-storm" and result.problems):
            left = [f"{r.fault} {r.target}" for r in result.remaining]
            raise StepFailed(f"could not stop the {kind} load test: "
                             + "; ".join([*(f"still active: {x}" for x in left),
                                          *result.problems]))
    return {"stopped": stopped, "actions": actions, "notes": notes}


class RestartParams(_Params):
    services: list[ServiceName] = Field(min_length=1)


@action("restart", RestartParams, mutating=True,
        summary="restart services (every replica) through the runtime backend")
def restart(ctx: StepContext, p: RestartParams) -> Any:
    status = ctx.backend.restart(list(p.services))
    return _summary(status, p.services)


class ScaleParams(_Params):
    service: ServiceName
    replicas: int = Field(ge=1, le=16)


@action("scale", ScaleParams, mutating=True, summary="run N replicas of a service")
def scale(ctx: StepContext, p: ScaleParams) -> Any:
    status = ctx.backend.scale(p.service, p.replicas)
    return _summary(status, [p.service])


class RestoreParams(_Params):
    services: list[ServiceName] = Field(default_factory=lambda: list(SERVICES), min_length=1)


@action("restore_services", RestoreParams, mutating=True,
        summary="bring back services that are killed/stopped (start) or paused (resume)")
def restore_services(ctx: StepContext, p: RestoreParams) -> Any:
    backend = ctx.backend
    status = backend.status()
    done: list[str] = []
    for service in p.services:
        procs = [proc for proc in status.processes if proc.name == service]
        if any(proc.paused for proc in procs):
            backend.resume(service)
            done.append(f"resumed {service}")
        if any(not proc.alive for proc in procs) or not procs:
            backend.start(service)
            done.append(f"started {service}")
    return {"done": done or ["nothing to restore: every service is running"]}


class ResetBreakerParams(_Params):
    downstream: Literal["orders", "payments", "inventory", "notifications", "open"] = Field(
        description='a downstream, or "open" for every breaker that is not closed')
    # The runbook waits for the breaker's own probe (open_duration 30 s); a playbook whose
    # cause is gone may reset instead, which closes it at once. The choice is the playbook's.
    mode: Literal["reset", "wait"] = "reset"
    timeout: Duration = 45.0
    # mode reset: then watch the breakers (every one for "open") this long; one that opens
    # (again), e.g. from calls its caller began while the service was down and that fail
    # after the reset, is reset after a short pause, until all stay closed for `settle`, or
    # every reset one has carried SETTLE_CALLS calls without a failure (fails after
    # `timeout`). 0: reset once and return.
    settle: Duration = Field(default=0.0, ge=0)


SETTLE_POLL_S = 0.5
# Calls through a reset breaker (its window starts empty at the reset), none failed: its
# downstream answers its caller again, and waiting out the rest of `settle` proves nothing.
SETTLE_CALLS = 5


def _breakers(ctx: StepContext) -> dict[str, dict[str, Any]]:
    response = ctx.http("GET", "gateway", "/status/breakers", timeout=3.0)
    if response.status_code != 200:
        raise StepFailed(f"gateway /status/breakers answered {response.status_code}")
    return {name: dict(b) for name, b in response.json().get("breakers", {}).items()}


def _states(breakers: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {name: str(b.get("state")) for name, b in breakers.items()}


def _breaker_states(ctx: StepContext) -> dict[str, str]:
    return _states(_breakers(ctx))


def _carries_calls(snapshot: dict[str, Any]) -> bool:
    return (snapshot.get("state") == "closed" and snapshot.get("failure_rate") == 0
            and int(snapshot.get("calls_in_window") or 0) >= SETTLE_CALLS)


@action("reset_breaker", ResetBreakerParams, mutating=True,
        summary="close a circuit breaker once its cause is gone (reset, or wait for its probe)")
def reset_breaker(ctx: StepContext, p: ResetBreakerParams) -> Any:
    breakers = _breakers(ctx)
    states = _states(breakers)
    if p.downstream == "open":
        targets = [name for name, state in states.items() if state != "closed"]
        if p.mode == "reset" and p.settle:
            # With settle, also a closed breaker whose window still holds the outage's
            # failures: a few more would open it, and an emptied window lets the calls
            # that follow show the downstream answers (the early end of settle).
            targets += [name for name, b in breakers.items() if name not in targets
                        and float(b.get("failure_rate") or 0) > 0]
    else:
        targets = [p.downstream] if states.get(p.downstream, "closed") != "closed" else []
    if not targets and not (p.mode == "reset" and p.settle):
        return {"reset": [], "note": "already closed"}
    if p.mode == "wait":
        deadline = time.monotonic() + p.timeout
        while time.monotonic() < deadline:
            states = _breaker_states(ctx)
            if all(states.get(t) == "closed" for t in targets):
                return {"waited_for": targets, "states": states}
            time.sleep(1.0)
        raise StepFailed(f"breakers {', '.join(targets)} still not closed after {p.timeout:g}s")
    started = time.monotonic()
    for target in targets:
        _reset(ctx, target)
    if not p.settle:
        return {"reset": targets}
    return _settle(ctx, p, targets, started)


def _reset(ctx: StepContext, target: str) -> None:
    response = ctx.http("POST", "gateway", f"/status/breakers/{target}/reset", admin=True)
    if response.status_code != 200:
        raise StepFailed(f"reset of the {target} breaker answered {response.status_code}: "
                         f"{response.text[:200]}")


def _settle(ctx: StepContext, p: ResetBreakerParams, targets: list[str],
            started: float) -> dict[str, Any]:
    """Keep the reset breakers closed until they stay closed for p.settle on their own.

    A reset right after a restart races the caller: calls it began while the service was
    down still fail after the reset (or after a check that found the breaker closed), open
    it, and it then stays open its full open duration (30 s) though the cause is gone. A
    breaker seen open is reset after a pause that grows with each time (1 s, 2 s ... at most
    5 s), so a cause that persists costs a few calls per round, not a stream of them; the
    step fails once p.timeout has passed. It ends early once every breaker it reset has
    carried SETTLE_CALLS calls since, none failed (under traffic, within a poll or two)."""
    resets = dict.fromkeys(targets, 1)
    deadline = started + p.timeout
    closed_since = time.monotonic()
    settled_by = "time"
    while time.monotonic() - closed_since < p.settle:
        time.sleep(SETTLE_POLL_S)
        breakers = _breakers(ctx)
        states = _states(breakers)
        watched = list(states) if p.downstream == "open" else [p.downstream]
        reopened = [t for t in watched if states.get(t, "closed") != "closed"]
        if not reopened:
            if resets and all(_carries_calls(breakers.get(t, {})) for t in resets):
                settled_by = "calls"
                break
            continue
        pause = min(5.0, float(max(1, *(resets.get(t, 0) for t in reopened))))
        if time.monotonic() + pause >= deadline:
            raise StepFailed(
                f"breakers {', '.join(reopened)} kept opening after the reset and did not "
                f"stay closed for {p.settle:g}s within {p.timeout:g}s (reset "
                f"{', '.join(f'{t} {n}x' for t, n in resets.items()) or 'none yet'}); "
                "their downstream still fails for its callers")
        time.sleep(pause)
        for target in reopened:
            _reset(ctx, target)
            resets[target] = resets.get(target, 0) + 1
        closed_since = time.monotonic()
    again = {t: n - (t in targets) for t, n in resets.items() if n - (t in targets) > 0}
    return {"reset": targets, "settled_s": round(time.monotonic() - closed_since, 1),
            "settled_by": settled_by, "reset_again": again}


class WaitUntilParams(_Params):
    condition: Condition
    timeout: Duration = 30.0
    interval: Duration = 1.0


@action("wait_until", WaitUntilParams, mutating=False,
        summary="poll a condition until it holds (fails after timeout)")
def wait_until(ctx: StepContext, p: WaitUntilParams) -> Any:
    deadline = time.monotonic() + p.timeout
    while True:
        result = evaluate(p.condition, ctx.probe())
        if result.holds:
            return {"holds": True, "result": result.to_json()}
        if time.monotonic() >= deadline:
            failing = "; ".join(f"{f.label} = {f.value}" for f in result.failing())
            raise StepFailed(f"condition did not hold within {p.timeout:g}s: {failing}")
        time.sleep(p.interval)


class AdviseParams(_Params):
    message: str = Field(min_length=1)


@action("advise", AdviseParams, mutating=False,
        summary="record a step that needs a person (e.g. rate-limit at the network layer)")
def advise(_ctx: StepContext, p: AdviseParams) -> Any:
    return {"advice": p.message}


def _summary(status: Any, services: list[str]) -> dict[str, Any]:
    procs = [proc for proc in status.processes if proc.name in services]
    return {"processes": [f"{proc.label} pid {proc.pid} {proc.health}" for proc in procs]}

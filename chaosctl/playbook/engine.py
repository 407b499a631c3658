"""The engine: detect -> diagnose -> remediate -> verify. It never prints; it emits events.

Listeners (the console renderer, --json, the journal writer) receive every `Event` (source
"engine", subject the playbook), each isolated by an `EventBus`: a listener that raises is
logged and skipped, the run goes on. Each step leaves a `StepRecord` (start, end, duration,
status, output, error). Guardrails: nothing runs for an incident that is not firing when the
run starts, the remediation lock is held for the whole run (steps and verify), and every
mutating action is counted against the cap.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from chaosctl.clients.prometheus import Prometheus
from chaosctl.config import Settings
from chaosctl.errors import ChaosctlError, PrometheusUnavailableError
from chaosctl.events import Event, EventBus, Listener
from chaosctl.playbook.conditions import ConditionResult, Probe, evaluate
from chaosctl.playbook.guard import RemediationGuard
from chaosctl.playbook.journal import JournalWriter
from chaosctl.playbook.library import Catalog
from chaosctl.playbook.model import ActionStep, BranchStep, Playbook
from chaosctl.playbook.registry import StepContext, StepFailed, get_action

# Engine event kinds (data shapes in the CLI's --json help and the journal's docstring):
# run_start | detect | step_start | step_end | verify_start | verify_check | verify_end | run_end
__all__ = ["Detection", "Engine", "Event", "Listener", "RunResult", "StepRecord"]


@dataclass
class StepRecord:
    phase: str
    name: str
    action: str
    params: dict[str, Any]
    status: str  # ok | failed | dry_run
    started_at: float
    ended_at: float
    duration_s: float
    output: Any = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Detection:
    playbook: str
    title: str
    severity: str
    firing: bool  # fires and is not inhibited
    raw_firing: bool  # fires, inhibited or not
    result: ConditionResult
    inhibited_by: list[str] = field(default_factory=list)
    evidence: list[StepRecord] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"playbook": self.playbook, "title": self.title, "severity": self.severity,
                "firing": self.firing, "inhibited_by": self.inhibited_by,
                "symptoms": self.result.to_json(),
                "evidence": [e.to_json() for e in self.evidence]}


@dataclass
class RunResult:
    """status: recovered | not_recovered | not_firing | dry_run."""

    playbook: str
    status: str
    started_at: float
    ended_at: float = 0.0
    steps: list[StepRecord] = field(default_factory=list)
    plan: list[dict[str, Any]] = field(default_factory=list)
    verify: dict[str, Any] = field(default_factory=dict)
    still_failing: list[str] = field(default_factory=list)
    error: str | None = None
    journal: str | None = None
    firing: bool | None = None  # whether it fired when the run started

    @property
    def recovered(self) -> bool:
        return self.status in ("recovered", "not_firing", "dry_run")

    def to_json(self) -> dict[str, Any]:
        return {"playbook": self.playbook, "status": self.status, "firing": self.firing,
                "recovered": self.recovered, "started_at": self.started_at,
                "ended_at": self.ended_at,
                "duration_s": round(self.ended_at - self.started_at, 3),
                "steps": [s.to_json() for s in self.steps], "plan": self.plan,
                "verify": self.verify, "still_failing": self.still_failing,
                "error": self.error, "journal": self.journal}


class Engine:
    """Detect, diagnose, remediate and verify with one catalog, under one guard.

    `journal` (when given) is the first listener, so the other listeners see a run's journal
    path in `run_end`; `guard` defaults to the shared remediation lock and action cap.
    """

    def __init__(self, settings: Settings, catalog: Catalog, *,
                 listeners: Iterable[Listener] = (), journal: JournalWriter | None = None,
                 guard: RemediationGuard | None = None, prom: Prometheus | None = None) -> None:
        self.settings = settings
        self.catalog = catalog
        self.journal = journal
        self.events = EventBus([journal, *listeners] if journal is not None else listeners)
        self.prom = prom or Prometheus(settings.prometheus_url)
        self.ctx = StepContext(settings, self.prom)
        self.guard = guard if guard is not None else RemediationGuard(settings.home)

    # -- events -------------------------------------------------------------------------------
    def emit(self, kind: str, playbook: str, **data: Any) -> None:
        self.events.publish(kind, "engine", playbook, data)

    def probe(self) -> Probe:
        return Probe(self.settings, self.prom)

    # -- detect -------------------------------------------------------------------------------
    def detect(self, playbooks: list[Playbook], probe: Probe | None = None) -> list[Detection]:
        """Evaluate detect of `playbooks` (and of their inhibitors) and apply inhibition.

        PrometheusUnavailableError propagates: without Prometheus nothing can be detected.
        """
        probe = probe or self.probe()
        wanted = {pb.name for pb in playbooks}
        needed = {pb.name: pb for pb in playbooks}
        for pb in playbooks:
            for other in pb.inhibited_by:
                if other not in needed and other in self.catalog.names():
                    needed[other] = self.catalog.get(other)
        results = {name: evaluate(pb.detect, probe) for name, pb in needed.items()}
        raw = {name for name, r in results.items() if r.holds}
        detections = []
        for pb in playbooks:
            inhibitors = [o for o in pb.inhibited_by if o in raw] if pb.name in raw else []
            detections.append(Detection(pb.name, pb.title, pb.severity,
                                        pb.name in raw and not inhibitors, pb.name in raw,
                                        results[pb.name], inhibitors))
        for d in detections:
            if d.playbook in wanted:
                self.emit("detect", d.playbook, detection=d.to_json())
        return detections

    def gather_evidence(self, pb: Playbook) -> list[StepRecord]:
        """Run the read-only diagnose steps; each failure is recorded, never raised."""
        records: list[StepRecord] = []
        self._run_steps(pb, "diagnose", pb.diagnose, records, dry_run=False)
        return records

    # -- steps --------------------------------------------------------------------------------
    def _run_action(self, pb: Playbook, phase: str, step: ActionStep,
                    dry_run: bool) -> StepRecord:
        spec = get_action(step.action)
        assert spec is not None  # the catalog validated every action
        params = spec.params.model_validate(step.params)
        shown = step.params
        start = time.time()
        self.emit("step_start", pb.name, phase=phase, name=step.label(), action=step.action,
                  params=shown, mutating=spec.mutating)
        status, output, error = "ok", None, None
        t0 = time.monotonic()
        if dry_run and spec.mutating:
            status, output = "dry_run", {"would_run": spec.summary}
        else:
            try:
                if spec.mutating and phase == "remediate":
                    self.guard.consume(pb.name, step.action)
                output = spec.func(self.ctx, params)
            except (StepFailed, ChaosctlError) as exc:
                status, error = "failed", str(exc)
            except Exception as exc:  # noqa: BLE001 - a step's bug must not lose the journal
                status, error = "failed", f"{type(exc).__name__}: {exc}"
        duration = time.monotonic() - t0
        record = StepRecord(phase, step.label(), step.action, shown, status, start,
                            start + duration, round(duration, 3), output, error)
        self.emit("step_end", pb.name, step=record.to_json())
        return record

    def _run_steps(self, pb: Playbook, phase: str, steps: list[Any], records: list[StepRecord],
                   dry_run: bool) -> bool:
        """Run steps in order; False as soon as one fails (later steps are not run)."""
        for step in steps:
            if isinstance(step, BranchStep):
                start = time.time()
                t0 = time.monotonic()
                self.emit("step_start", pb.name, phase=phase, name=step.label(), action="if",
                          params={}, mutating=False)
                try:
                    result = evaluate(step.if_, self.probe())
                    error = None
                except ChaosctlError as exc:
                    result, error = None, str(exc)
                duration = time.monotonic() - t0
                took = "then" if result is not None and result.holds else "else"
                record = StepRecord(
                    phase, step.label(), "if", {}, "failed" if error else "ok", start,
                    start + duration, round(duration, 3),
                    {"condition": result.to_json() if result else None, "branch": took}, error)
                records.append(record)
                self.emit("step_end", pb.name, step=record.to_json())
                if error:
                    return False
                chosen = step.then if took == "then" else step.else_
                if not self._run_steps(pb, phase, chosen, records, dry_run):
                    return False
                continue
            record = self._run_action(pb, phase, step, dry_run)
            records.append(record)
            if record.status == "failed" and phase == "remediate":
                return False
        return True

    # -- verify -------------------------------------------------------------------------------
    def verify(self, pb: Playbook) -> tuple[bool, dict[str, Any], list[str]]:
        """Poll every verify condition until all hold for hold_for, or the timeout passes."""
        spec = pb.verify
        self.emit("verify_start", pb.name, hold_for=spec.hold_for, timeout=spec.timeout)
        t0 = time.monotonic()
        held_since: float | None = None
        failing: list[str] = []
        checks = 0
        while True:
            now = time.monotonic()
            try:
                probe = self.probe()
                results = [evaluate(c, probe) for c in spec.conditions]
                failing = [f"{f.label}: {f.value if f.value is not None else f.detail or 'no'}"
                           + (f" (want {f.threshold})" if f.threshold else "")
                           for r in results for f in r.failing()]
            except PrometheusUnavailableError as exc:
                failing = [str(exc)]
            checks += 1
            held_since = (held_since or now) if not failing else None
            held = 0.0 if held_since is None else now - held_since
            self.emit("verify_check", pb.name, failing=failing, held_s=round(held, 1))
            if held_since is not None and held >= spec.hold_for:
                summary = {"passed": True, "held_s": round(held, 1), "checks": checks,
                           "duration_s": round(now - t0, 3)}
                self.emit("verify_end", pb.name, **summary)
                return True, summary, []
            if now - t0 >= spec.timeout:
                summary = {"passed": False, "held_s": round(held, 1), "checks": checks,
                           "duration_s": round(now - t0, 3)}
                self.emit("verify_end", pb.name, failing=failing, **summary)
                return False, summary, failing
            time.sleep(spec.interval)

    # -- remediate ----------------------------------------------------------------------------
    def plan(self, pb: Playbook) -> list[dict[str, Any]]:
        """The remediation as data (for --dry-run and `playbooks show`)."""

        def describe(steps: list[Any]) -> list[dict[str, Any]]:
            out: list[dict[str, Any]] = []
            for step in steps:
                if isinstance(step, BranchStep):
                    out.append({"if": step.if_.model_dump(by_alias=True, exclude_none=True),
                                "then": describe(step.then), "else": describe(step.else_)})
                else:
                    spec = get_action(step.action)
                    out.append({"action": step.action, "name": step.label(),
                                "params": step.params,
                                "mutating": bool(spec and spec.mutating)})
            return out

        return describe(pb.remediate)

    def remediate(self, pb: Playbook, *, dry_run: bool = False) -> RunResult:
        """Run remediate then verify for one playbook, under the guardrails."""
        result = RunResult(pb.name, "not_recovered", time.time())
        self.emit("run_start", pb.name, title=pb.title, dry_run=dry_run)
        try:
            detection = self.detect([pb])[0]
            result.firing = detection.raw_firing
            if dry_run:  # the plan whether or not it fires; nothing runs
                result.status = "dry_run"
                result.plan = self.plan(pb)
                return result
            if not detection.raw_firing:
                result.status = "not_firing"
                return result
            with self.guard.lock(pb.name):
                self._run_steps(pb, "remediate", pb.remediate, result.steps, dry_run=False)
                failed = [s for s in result.steps if s.status == "failed"]
                ok, summary, failing = self.verify(pb)
                result.verify, result.still_failing = summary, failing
                if failed:
                    result.error = f"step {failed[0].name} failed: {failed[0].error}"
                result.status = "recovered" if ok else "not_recovered"
            return result
        except ChaosctlError as exc:
            result.error = str(exc)
            result.status = "not_recovered"
            raise
        finally:
            result.ended_at = time.time()
            if self.journal is not None:
                result.journal = _text(self.journal.current_path)
            self.emit("run_end", pb.name, result=result.to_json())
            if self.journal is not None and self.journal.current_path is None:
                result.journal = None  # its last write failed: do not point at a stale file

    # -- outside a playbook -------------------------------------------------------------------
    def run_action(self, action: str, params: dict[str, Any]) -> Any:
        """Run one registered action now with this engine's context, outside any playbook:
        no events, no lock, not counted by the cap (for clean-up such as a game day's
        rollback). Returns the action's output; StepFailed or ChaosctlError when it fails."""
        spec = get_action(action)
        if spec is None:
            raise ChaosctlError(f"unknown action {action!r}")
        return spec.func(self.ctx, spec.params.model_validate(params))


def _text(path: object) -> str | None:
    return None if path is None else str(path)

"""`chaosctl diagnose|remediate|watch|playbooks ... --json`: detections, runs, steps."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from chaosctl.results import OpenResult, Result
from chaosctl.results.health import HealthReport


class Condition(Result):
    """COND: how one detect/verify condition evaluated (holds null: could not evaluate)."""

    label: str
    kind: Literal["query", "chaos_key", "health", "load_test", "any", "all", "not"]
    holds: bool | None
    value: Any
    threshold: str | None
    detail: str
    children: list[Condition]


class Step(Result):
    """STEP: the record every step leaves (also the journal's step object)."""

    phase: Literal["diagnose", "remediate"]
    name: str
    action: str
    params: dict[str, Any]
    status: Literal["ok", "failed", "dry_run"]
    started_at: float
    ended_at: float
    duration_s: float
    output: Any
    error: str | None


class Detection(Result):
    playbook: str
    title: str
    severity: Literal["critical", "high", "warning", "info"]
    firing: bool
    inhibited_by: list[str]
    symptoms: Condition
    evidence: list[Step]


class PrometheusReach(Result):
    url: str
    reachable: bool
    error: str | None


class DiagnoseResult(Result):
    """`diagnose --json`; direct: what was checked without Prometheus (when unreachable)."""

    prometheus: PrometheusReach
    firing: list[str]
    playbooks: list[Detection]
    direct: HealthReport | None


class PlanAction(Result):
    action: str
    name: str
    params: dict[str, Any]
    mutating: bool


class PlanBranch(Result):
    if_: dict[str, Any] = Field(alias="if")  # the playbook's condition, as written
    then: list[PlanAction | PlanBranch]
    else_: list[PlanAction | PlanBranch] = Field(alias="else")


class VerifySummary(Result):
    passed: bool
    held_s: float
    checks: int
    duration_s: float


class NotRun(Result):
    """`{}`: the phase did not run."""


class Run(Result):
    """RUN: one playbook's remediation; recovered is true for recovered, not_firing, dry_run."""

    playbook: str
    status: Literal["recovered", "not_recovered", "not_firing", "dry_run"]
    firing: bool | None
    recovered: bool
    started_at: float
    ended_at: float
    duration_s: float
    steps: list[Step]
    plan: list[PlanAction | PlanBranch]
    verify: VerifySummary | NotRun
    still_failing: list[str]
    error: str | None
    journal: str | None


class RemediateResult(Result):
    runs: list[Run]
    recovered: bool


class PlaybookEntry(Result):
    """One item of `playbooks list --json` (a list)."""

    name: str
    severity: Literal["critical", "high", "warning", "info"]
    title: str
    runbook: str
    file: str


class Problem(Result):
    file: str
    line: int | None
    path: str  # field path like remediate[1].params.replicas ("" for the whole file)
    message: str


class ValidateResult(Result):
    valid: bool
    files: list[str]
    problems: list[Problem]


class SkippedPlaybook(Result):
    playbook: str
    reason: str


class WatchRound(Result):
    """`watch --json`: the line written after every detection round."""

    event: Literal["round"]
    playbook: None
    at: float
    firing: list[str]
    skipped: list[SkippedPlaybook]
    error: str | None


class WatchEvent(OpenResult):
    """`watch --json`: one line per engine event, its data following these fields."""

    event: Literal["run_start", "step_end", "verify_end", "run_end"]
    playbook: str
    at: float

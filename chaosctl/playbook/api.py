"""Core entry points the CLI and the game day call: one way to build an engine (catalog,
listeners, journal, guard), then diagnose, remediate and watch with it."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypedDict

from chaosctl.config import Settings
from chaosctl.errors import ChaosctlError, PrometheusUnavailableError
from chaosctl.events import Listener
from chaosctl.playbook.engine import Detection, Engine, RunResult
from chaosctl.playbook.guard import RemediationGuard
from chaosctl.playbook.journal import JournalWriter
from chaosctl.playbook.library import Catalog, load_catalog
from chaosctl.playbook.registry import StepFailed

if TYPE_CHECKING:  # imported when Prometheus is down only: it pulls in the HTTP clients
    from chaosctl.health import HealthReport


def load(settings: Settings) -> Catalog:
    """The shipped playbooks, validated as a whole (PromQL included) before anything runs."""
    return load_catalog(prometheus_url=settings.prometheus_url)


def build_engine(settings: Settings, listeners: Iterable[Listener] = (), *,
                 guard: RemediationGuard | None = None, journal: bool = True) -> Engine:
    """A validated catalog and an engine with these listeners, behind the journal writer.

    `guard`: the lock and action cap (default: the shared ones; a game day passes its own
    action count). `journal=False` for read-only work (diagnose) that writes no journal.
    """
    return Engine(settings, load(settings), listeners=listeners,
                  journal=JournalWriter(settings.home) if journal else None, guard=guard)


@dataclass
class DiagnoseReport:
    prometheus_url: str
    prometheus_reachable: bool
    prometheus_error: str | None = None
    detections: list[Detection] = field(default_factory=list)
    direct: HealthReport | None = None  # chaosctl.health report, when Prometheus is down

    @property
    def firing(self) -> list[str]:
        return [d.playbook for d in self.detections if d.firing]

    def to_json(self) -> dict[str, object]:
        return {
            "prometheus": {"url": self.prometheus_url, "reachable": self.prometheus_reachable,
                           "error": self.prometheus_error},
            "firing": self.firing,
            "playbooks": [d.to_json() for d in self.detections],
            "direct": self.direct.to_json() if self.direct is not None else None,
        }


def diagnose(settings: Settings, names: list[str] | None = None,
             evidence: bool = True) -> DiagnoseReport:
    """Evaluate detect of the named playbooks (all by default); gather evidence for firing ones.

    When Prometheus cannot be reached, the report says so and carries what can be checked
    directly (service health, breakers, chaos keys) instead of detections.
    """
    engine = build_engine(settings, journal=False)
    playbooks = engine.catalog.select(names)
    report = DiagnoseReport(settings.prometheus_url, True)
    try:
        engine.prom.require_up()
        report.detections = engine.detect(playbooks)
    except PrometheusUnavailableError as exc:
        from chaosctl.health import check_health

        report.prometheus_reachable = False
        report.prometheus_error = str(exc)
        report.direct = check_health(settings)
        return report
    if evidence:
        for detection in report.detections:
            if detection.firing:
                detection.evidence = engine.gather_evidence(
                    engine.catalog.get(detection.playbook))
    return report


def firing(engine: Engine) -> list[str]:
    """Names of the incidents firing now (inhibited ones excluded).

    PrometheusUnavailableError when Prometheus cannot answer."""
    return [d.playbook for d in engine.detect(engine.catalog.all()) if d.firing]


def firing_now(engine: Engine) -> list[str]:
    """`firing`, after checking that Prometheus is up (a clear error when it is not)."""
    engine.prom.require_up()
    return firing(engine)


def remediate(engine: Engine, names: list[str], *, dry_run: bool = False) -> list[RunResult]:
    """Remediate + verify each playbook in turn; each result carries its journal path."""
    engine.prom.require_up()
    return [engine.remediate(engine.catalog.get(name), dry_run=dry_run) for name in names]


def reset_breakers(engine: Engine) -> str | None:
    """Close every breaker that is not closed, outside any playbook (a game day's rollback
    leaves the stack as its preflight found it). The problem as text, or None."""
    try:
        engine.run_action("reset_breaker", {"downstream": "open"})
    except (StepFailed, ChaosctlError, OSError) as exc:
        return str(exc)
    return None


class Skipped(TypedDict):
    playbook: str
    reason: str


class WatchRound(TypedDict):
    at: float
    firing: list[str]
    runs: list[RunResult]
    skipped: list[Skipped]
    error: str | None


def watch_round(engine: Engine, last_run: dict[str, float], cooldown_s: float) -> WatchRound:
    """One round of `watch`: detect everything, remediate what fires (guardrails apply).

    A playbook remediated less than `cooldown_s` ago is not run again yet: its 15 s detection
    windows still hold the incident for a while after a successful fix. Never raises for an
    unreachable Prometheus, a held lock or a reached cap: they are reported in the round.
    """
    round_ = WatchRound(at=time.time(), firing=[], runs=[], skipped=[], error=None)
    try:
        round_["firing"] = firing_now(engine)
    except ChaosctlError as exc:
        round_["error"] = str(exc)
        return round_
    for name in round_["firing"]:
        if time.monotonic() - last_run.get(name, -1e9) < cooldown_s:
            round_["skipped"].append({"playbook": name, "reason": "cooldown"})
            continue
        last_run[name] = time.monotonic()
        try:
            result = engine.remediate(engine.catalog.get(name))
        except ChaosctlError as exc:
            round_["skipped"].append({"playbook": name, "reason": str(exc)})
            continue
        last_run[name] = time.monotonic()
        round_["runs"].append(result)
    return round_

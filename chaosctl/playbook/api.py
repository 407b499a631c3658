"""Core entry points the CLI calls: diagnose, and building a validated engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chaosctl.config import Settings
from chaosctl.errors import PrometheusUnavailableError


def load(settings: Settings) -> Any:
    """The shipped playbooks, validated as a whole (PromQL included) before anything runs."""
    from chaosctl.playbook.catalog import load_catalog

    return load_catalog(prometheus_url=settings.prometheus_url)


@dataclass
class DiagnoseReport:
    prometheus_url: str
    prometheus_reachable: bool
    prometheus_error: str | None = None
    detections: list[Any] = field(default_factory=list)
    direct: Any = None  # chaosctl.health report, when Prometheus cannot be reached

    @property
    def firing(self) -> list[str]:
        return [d.playbook for d in self.detections if d.firing]

    def to_json(self) -> dict[str, Any]:
        return {
            "prometheus": {"url": self.prometheus_url, "reachable": self.prometheus_reachable,
                           "error": self.prometheus_error},
            "firing": self.firing,
            "playbooks": [d.to_json() for d in self.detections],
            "direct": self.direct.model_dump(mode="json") if self.direct is not None else None,
        }


def diagnose(settings: Settings, names: list[str] | None = None,
             evidence: bool = True) -> DiagnoseReport:
    """Evaluate detect of the named playbooks (all by default); gather evidence for firing ones.

    When Prometheus cannot be reached, the report says so and carries what can be checked
    directly (service health, breakers, chaos keys) instead of detections.
    """
    from chaosctl.playbook.engine import Engine

    catalog = load(settings)
    playbooks = catalog.select(names)
    engine = Engine(settings, catalog)
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
                detection.evidence = engine.gather_evidence(catalog.get(detection.playbook))
    return report


def build_engine(settings: Settings, listeners: list[Any]) -> Any:
    """A validated catalog and an engine with these listeners (plus the journal writer)."""
    from chaosctl.playbook.engine import Engine
    from chaosctl.playbook.journal import JournalWriter

    catalog = load(settings)
    journal = JournalWriter(settings.home)
    engine = Engine(settings, catalog, [journal, *listeners])
    engine.journal = journal  # type: ignore[attr-defined]
    return engine


def firing_now(engine: Any) -> list[str]:
    """Names of the incidents firing now (inhibited ones excluded); needs Prometheus."""
    engine.prom.require_up()
    return [d.playbook for d in engine.detect(engine.catalog.all()) if d.firing]


def remediate(engine: Any, names: list[str], *, dry_run: bool = False) -> list[Any]:
    """Remediate + verify each playbook in turn; each result carries its journal path."""
    engine.prom.require_up()
    results = []
    for name in names:
        result = engine.remediate(engine.catalog.get(name), dry_run=dry_run)
        if not dry_run and engine.journal.last_path is not None:
            result.journal = str(engine.journal.last_path)
        results.append(result)
    return results


def watch_round(engine: Any, last_run: dict[str, float], cooldown_s: float) -> dict[str, Any]:
    """One round of `watch`: detect everything, remediate what fires (guardrails apply).

    A playbook remediated less than `cooldown_s` ago is not run again yet: its 15 s detection
    windows still hold the incident for a while after a successful fix. Never raises for an
    unreachable Prometheus, a held lock or a reached cap: they are reported in the round.
    """
    import time

    from chaosctl.errors import ChaosctlError

    round_: dict[str, Any] = {"at": time.time(), "firing": [], "runs": [], "skipped": [],
                              "error": None}
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
        if engine.journal.last_path is not None:
            result.journal = str(engine.journal.last_path)
        last_run[name] = time.monotonic()
        round_["runs"].append(result.to_json())
    return round_

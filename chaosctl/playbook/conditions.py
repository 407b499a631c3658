"""Evaluating conditions (detect, branch `if`, wait_until, verify) against the live stack.

A `Probe` is one look at the stack: PromQL answers, the health report (service health,
breakers, chaos keys) and chaosctl's active-chaos status (its running load bursts) are fetched
once per probe and shared by every condition evaluated with it, so one `diagnose` asks
Prometheus each distinct query once.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from typing import Any

from chaosctl.chaos.status import collect
from chaosctl.clients.prometheus import Prometheus, PromQLError, Series
from chaosctl.config import Settings
from chaosctl.health import check_health
from chaosctl.playbook.model import (
    AllCondition,
    AnyCondition,
    ChaosKeyCondition,
    HealthCondition,
    LoadTestCondition,
    NotCondition,
    PromCondition,
)

OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
       "==": operator.eq, "!=": operator.ne}


class Probe:
    """Cached evidence for one evaluation round (see module docstring)."""

    def __init__(self, settings: Settings, prom: Prometheus | None = None) -> None:
        self.settings = settings
        self.prom = prom or Prometheus(settings.prometheus_url)
        self._queries: dict[str, list[Series]] = {}
        self._health: Any = None
        self._chaos: Any = None

    def query(self, expr: str) -> list[Series]:
        if expr not in self._queries:
            self._queries[expr] = self.prom.query(expr)
        return self._queries[expr]

    def health(self) -> Any:
        """chaosctl.health's report (services, breakers, redis, chaos keys)."""
        if self._health is None:
            self._health = check_health(self.settings, timeout=1.5)
        return self._health

    def chaos_status(self) -> Any:
        """chaosctl.chaos.status's report of active chaos (workers from the state dir).

        Without the runtime's process list: a load_test condition needs only the workers,
        and skipping it keeps a probe from asking the backend about every replica."""
        if self._chaos is None:
            self._chaos = collect(self.settings, with_processes=False)
        return self._chaos


@dataclass
class ConditionResult:
    """How one condition evaluated: holds is None when it could not be evaluated."""

    label: str
    kind: str
    holds: bool | None
    value: Any = None
    threshold: str | None = None
    detail: str = ""
    children: list[ConditionResult] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "kind": self.kind, "holds": self.holds,
                "value": self.value, "threshold": self.threshold, "detail": self.detail,
                "children": [c.to_json() for c in self.children]}

    def leaves(self) -> list[ConditionResult]:
        if not self.children:
            return [self]
        return [leaf for c in self.children for leaf in c.leaves()]

    def failing(self) -> list[ConditionResult]:
        """The parts that do not hold (what still fails, for a not-recovered report)."""
        if self.holds is True:
            return []
        if not self.children or self.kind == "not":
            return [self]
        return [f for c in self.children for f in c.failing()] or [self]


def _number(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 6)


def _prom(cond: PromCondition, probe: Probe) -> ConditionResult:
    threshold = f"{cond.op} {cond.threshold:g}"
    try:
        samples = probe.query(cond.query)
    except PromQLError as exc:
        return ConditionResult(cond.label(), "query", None, threshold=threshold,
                               detail=f"bad PromQL: {exc}")
    compare = OPS[cond.op]
    # NaN (e.g. 0/0 with no traffic) is "no data", never a match.
    numbers = [s for s in samples if not math.isnan(s.value)]
    matching = [s for s in numbers if compare(s.value, cond.threshold)]
    shown = matching or numbers
    if not shown:
        return ConditionResult(cond.label(), "query", False, None, threshold, "no data")
    # Show the series furthest past (or nearest to) the threshold.
    pick = max(shown, key=lambda s: abs(s.value - cond.threshold))
    detail = pick.describe()
    if len(matching) > 1:
        detail = f"{len(matching)} series match; e.g. {detail}"
    return ConditionResult(cond.label(), "query", bool(matching), _number(pick.value),
                           threshold, detail)


def _chaos(cond: ChaosKeyCondition, probe: Probe) -> ConditionResult:
    report = probe.health()
    if report.redis.status != "ok":
        return ConditionResult(cond.label(), "chaos_key", None,
                               detail=f"redis {report.redis.status}")
    found = next((k for k in report.chaos if k.key == cond.chaos_key), None)
    is_set = found is not None
    value = found.value if found else None
    return ConditionResult(cond.label(), "chaos_key", is_set == cond.is_set, value,
                           "set" if cond.is_set else "not set",
                           f"ttl {found.ttl_s}s" if found and found.ttl_s is not None else "")


def _health(cond: HealthCondition, probe: Probe) -> ConditionResult:
    services = probe.health().services
    statuses = {name: services[name].status for name in cond.health if name in services}
    hits = {n: s for n, s in statuses.items() if s in cond.status}
    shown = hits or statuses
    value = ", ".join(f"{n}={s}" for n, s in shown.items())
    return ConditionResult(cond.label(), "health", bool(hits), value, "|".join(cond.status))


def _load_test(cond: LoadTestCondition, probe: Probe) -> ConditionResult:
    bursts = [f for f in probe.chaos_status().faults
              if f.kind == "worker" and f.fault in cond.kinds]
    value = ", ".join(f"{f.fault} {f.target} ({f.value:g} rps)" if isinstance(f.value, int | float)
                      else f"{f.fault} {f.target}" for f in bursts) or None
    detail = "; ".join(f.detail for f in bursts) or f"no {'/'.join(cond.kinds)} worker running"
    return ConditionResult(cond.label(), "load_test", bool(bursts) == cond.running, value,
                           cond.load_test, detail)


def evaluate(cond: Any, probe: Probe) -> ConditionResult:
    """Evaluate a condition tree now. PrometheusUnavailableError propagates to the caller."""
    if isinstance(cond, PromCondition):
        return _prom(cond, probe)
    if isinstance(cond, ChaosKeyCondition):
        return _chaos(cond, probe)
    if isinstance(cond, HealthCondition):
        return _health(cond, probe)
    if isinstance(cond, LoadTestCondition):
        return _load_test(cond, probe)
    if isinstance(cond, AnyCondition):
        kids = [evaluate(c, probe) for c in cond.any]
        holds = True if any(k.holds for k in kids) else (
            None if any(k.holds is None for k in kids) else False)
        return ConditionResult(cond.name or "any of", "any", holds, children=kids)
    if isinstance(cond, AllCondition):
        kids = [evaluate(c, probe) for c in cond.all]
        holds = False if any(k.holds is False for k in kids) else (
            None if any(k.holds is None for k in kids) else True)
        return ConditionResult(cond.name or "all of", "all", holds, children=kids)
    if isinstance(cond, NotCondition):
        kid = evaluate(cond.not_, probe)
        holds = None if kid.holds is None else not kid.holds
        return ConditionResult(cond.name or f"not ({kid.label})", "not", holds, children=[kid])
    raise TypeError(f"not a condition: {cond!r}")

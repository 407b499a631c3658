"""What a game-day run produces: a timeline of samples, the moments that matter, and results.

`ScenarioResult.to_json()` is the stable `game-day --json` shape (documented in the README).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

OUTCOMES = ("pass", "fail", "aborted")


@dataclass
class Sample:
    """One second of the run, seen from the client side plus the breaker states."""

    t: float  # seconds since the run started
    sent: int
    ok: int
    failed: int
    shed: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    breaker_open: int  # number of open (1) or half-open (2 counts as 1) breakers, -1 unknown

    @property
    def success_rate(self) -> float | None:
        done = self.ok + self.failed
        return self.ok / done if done else None


@dataclass
class Marker:
    t: float
    kind: str  # inject | detect | remediate | recover | abort | rollback
    label: str


@dataclass
class PhaseStats:
    requests: int = 0
    success_rate: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None


@dataclass
class Objective:
    name: str
    target: str
    actual: str
    passed: bool


@dataclass
class IntegrityReport:
    """Counts over the run's orders (created at or after the run started)."""

    orders: int = 0
    charges: int = 0  # live charges on the run's orders
    keys_over_charged: int = 0  # idempotency keys with more than one live charge
    max_charges_per_key: int = 0
    orders_over_reserved: int = 0  # orders with more than one live reservation
    max_reservations_per_order: int = 0
    pending: int = 0  # orders still pending after the recovery grace
    charged_not_completed: int = 0  # live charge on an order whose status is not completed
    # completed orders with no live charge or no live reservation (goods without money)
    completed_incomplete: int = 0
    examples: list[str] = field(default_factory=list)  # the first problems, by id
    notes: list[str] = field(default_factory=list)  # how "live" was judged per table

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ReplayStats:
    """Idempotency keys re-sent after the disruption, as a client whose request was cut off
    (or who retries an answered one) would: each until it gets a final answer."""

    mode: str  # cut-off | settled
    keys: int = 0
    answered: int = 0  # a final answer (the order, or a 4xx refusal)
    replayed: int = 0  # answered with the replay header
    new_orders: int = 0  # settled keys answered with another order than the first answer
    unresolved: int = 0  # still no final answer (409 in progress, 5xx) at the deadline
    examples: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ScenarioResult:
    scenario: str
    expected_playbook: str | None  # None: the stack should ride it out with no playbook
    outcome: str = "fail"
    mode: str = "auto"
    mttd_s: float | None = None
    mttr_s: float | None = None
    remediation_s: float | None = None
    fired_playbook: str | None = None
    right_playbook: bool = False
    before: PhaseStats = field(default_factory=PhaseStats)
    during: PhaseStats = field(default_factory=PhaseStats)
    after: PhaseStats = field(default_factory=PhaseStats)
    retry_amplification: float | None = None
    load_shed: int = 0
    duplicates: int | None = None
    lost_events: int | None = None
    integrity: IntegrityReport | None = None
    replay: ReplayStats | None = None
    objectives: list[Objective] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)
    report_path: str | None = None
    started_at: float = 0.0
    duration_s: float = 0.0
    reason: str | None = None  # why it failed or aborted
    rolled_back: bool = False

    def to_json(self, with_timeline: bool = False) -> dict[str, Any]:
        data = {
            "scenario": self.scenario,
            "outcome": self.outcome,
            "mode": self.mode,
            "mttd_s": _round(self.mttd_s),
            "mttr_s": _round(self.mttr_s),
            "remediation_s": _round(self.remediation_s),
            "expected_playbook": self.expected_playbook,
            "fired_playbook": self.fired_playbook,
            "right_playbook": self.right_playbook,
            "success_rate": {
                "before": _round(self.before.success_rate, 4),
                "during": _round(self.during.success_rate, 4),
                "after": _round(self.after.success_rate, 4),
            },
            "latency_ms": {
                phase: {"p95": _round(getattr(self, phase).p95_ms, 1),
                        "p99": _round(getattr(self, phase).p99_ms, 1)}
                for phase in ("before", "during", "after")
            },
            "requests": {phase: getattr(self, phase).requests
                         for phase in ("before", "during", "after")},
            "retry_amplification": _round(self.retry_amplification, 3),
            "load_shed": self.load_shed,
            "duplicates": self.duplicates,
            "lost_events": self.lost_events,
            "integrity": self.integrity.to_json() if self.integrity else None,
            "replay": self.replay.to_json() if self.replay else None,
            "objectives": [asdict(o) for o in self.objectives],
            "reason": self.reason,
            "rolled_back": self.rolled_back,
            "started_at": self.started_at,
            "duration_s": _round(self.duration_s),
            "report_path": self.report_path,
        }
        if with_timeline:
            data["markers"] = [asdict(m) for m in self.markers]
            data["samples"] = [
                {**asdict(s), "success_rate": _round(s.success_rate, 4)} for s in self.samples
            ]
        return data


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)

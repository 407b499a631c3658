"""`chaosctl game-day --json`."""

from __future__ import annotations

from typing import Literal

from chaosctl.results import Result


class Phases(Result):
    before: float | None
    during: float | None
    after: float | None


class Latency(Result):
    p95: float | None
    p99: float | None


class PhaseLatency(Result):
    before: Latency
    during: Latency
    after: Latency


class PhaseRequests(Result):
    before: int
    during: int
    after: int


class Integrity(Result):
    """Counts over the run's orders; every 'over' and 'pending' count must be 0 to pass."""

    orders: int
    charges: int
    keys_over_charged: int
    max_charges_per_key: int
    orders_over_reserved: int
    max_reservations_per_order: int
    pending: int
    charged_not_completed: int
    completed_incomplete: int
    examples: list[str]
    notes: list[str]


class Replay(Result):
    mode: Literal["cut-off", "settled"]
    keys: int
    answered: int
    replayed: int
    new_orders: int
    unresolved: int
    examples: list[str]


class Objective(Result):
    name: str
    target: str
    actual: str
    passed: bool


class ScenarioResult(Result):
    """expected_playbook is null for a scenario that needs none (redis-restart)."""

    scenario: str
    outcome: Literal["pass", "fail", "aborted"]
    mode: Literal["auto", "manual"]
    mttd_s: float | None
    mttr_s: float | None
    remediation_s: float | None
    expected_playbook: str | None
    fired_playbook: str | None
    right_playbook: bool
    success_rate: Phases
    latency_ms: PhaseLatency
    requests: PhaseRequests
    retry_amplification: float | None
    load_shed: int
    duplicates: int | None
    lost_events: int | None
    integrity: Integrity | None
    replay: Replay | None
    objectives: list[Objective]
    reason: str | None
    rolled_back: bool
    started_at: float
    duration_s: float
    report_path: str | None


class GameDayResult(Result):
    results: list[ScenarioResult]
    scorecard: str | None  # the scorecard page, with more than one scenario
    passed: int
    total: int

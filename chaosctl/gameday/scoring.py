"""Score a finished run: the objectives it is held to, and its outcome.

Timing and playbook objectives come from the scenario; the integrity objectives (read from
the databases) and the replay objectives apply to every scenario that has them. Anything not
checked counts as failed: a run cannot pass on what it did not look at.
"""

from __future__ import annotations

from chaosctl.gameday.model import IntegrityReport, Objective, ReplayStats, ScenarioResult
from chaosctl.gameday.scenarios import Scenario


def score(r: ScenarioResult, scenario: Scenario) -> None:
    """Fill r.objectives and decide the outcome (an aborted run stays aborted)."""
    obj, expected = scenario.objectives, scenario.playbook
    if expected is None:
        r.right_playbook = r.fired_playbook is None
    checks = [
        Objective("right playbook fired" if expected else "no playbook needed",
                  expected or "none", r.fired_playbook or "none", r.right_playbook),
    ]
    if expected is not None:
        checks.append(Objective("time to detect", f"<= {obj.max_mttd_s:.0f} s",
                                _s(r.mttd_s),
                                r.mttd_s is not None and r.mttd_s <= obj.max_mttd_s))
    checks += [
        Objective("time to recover", f"<= {obj.max_mttr_s:.0f} s", _s(r.mttr_s),
                  r.mttr_s is not None and r.mttr_s <= obj.max_mttr_s),
        Objective("success after recovery", f">= {obj.min_success_after:.0%}",
                  "–" if r.after.success_rate is None else f"{r.after.success_rate:.1%}",
                  r.after.success_rate is not None
                  and r.after.success_rate >= obj.min_success_after),
        Objective("duplicate orders", "== 0", str(r.duplicates), r.duplicates == 0),
        Objective("outbox events lost", "== 0", str(r.lost_events), r.lost_events == 0),
        Objective("rolled back", "nothing left injected", "yes" if r.rolled_back else "no",
                  r.rolled_back),
    ]
    if obj.max_retry_amplification is not None:
        amp = r.retry_amplification
        checks.append(Objective("retry amplification (payments calls per order)",
                                f"<= {obj.max_retry_amplification:.1f}x",
                                "–" if amp is None else f"{amp:.2f}x",
                                amp is not None and amp <= obj.max_retry_amplification))
    checks += integrity_objectives(r.integrity) + replay_objectives(r.replay)
    r.objectives = checks
    if r.outcome != "aborted":
        r.outcome = "pass" if all(c.passed for c in checks) else "fail"
        if r.outcome == "fail":
            r.reason = ((r.reason + "; ") if r.reason else "") + "missed: " + ", ".join(
                c.name for c in checks if not c.passed)
            if r.integrity is not None and r.integrity.examples:
                r.reason += " (" + "; ".join(r.integrity.examples[:3]) + ")"


def integrity_objectives(report: IntegrityReport | None) -> list[Objective]:
    """The money and stock invariants; not checked (interrupted, database error) fails."""
    if report is None:
        return [Objective(name, target, "not checked", False) for name, target in (
            ("live charges per idempotency key", "<= 1"),
            ("live reservations per order", "<= 1"),
            ("orders left pending after recovery", "== 0"),
            ("live charges on orders that did not complete", "== 0"),
            ("completed orders without a live charge and reservation", "== 0"))]
    return [
        Objective("live charges per idempotency key", "<= 1",
                  f"max {report.max_charges_per_key} ({report.keys_over_charged} keys over, "
                  f"{report.charges} charges, {report.orders} orders)",
                  report.keys_over_charged == 0),
        Objective("live reservations per order", "<= 1",
                  f"max {report.max_reservations_per_order} "
                  f"({report.orders_over_reserved} orders over)",
                  report.orders_over_reserved == 0),
        Objective("orders left pending after recovery", "== 0", str(report.pending),
                  report.pending == 0),
        Objective("live charges on orders that did not complete", "== 0",
                  str(report.charged_not_completed), report.charged_not_completed == 0),
        Objective("completed orders without a live charge and reservation", "== 0",
                  str(report.completed_incomplete), report.completed_incomplete == 0),
    ]


def replay_objectives(replay: ReplayStats | None) -> list[Objective]:
    if replay is None:
        return []
    checks = []
    if replay.mode == "cut-off":
        # Without a request cut off, the scenario proved nothing about crash recovery.
        checks.append(Objective("requests cut off by the disruption", ">= 1",
                                str(replay.keys), replay.keys >= 1))
    checks.append(Objective("replayed keys answered", f"{replay.keys} of {replay.keys}",
                            f"{replay.answered} of {replay.keys}", replay.unresolved == 0))
    if replay.mode == "settled":
        checks.append(Objective("replays answered with the original order", "0 new orders",
                                f"{replay.new_orders} new orders", replay.new_orders == 0))
    return checks


def _s(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} s"

"""Scenarios as step sequences, their scoring, and the client-side view of keys (no servers)."""

from __future__ import annotations

import pytest

from chaosctl.domain import FAULTS
from chaosctl.errors import InvalidInputError
from chaosctl.gameday.model import ReplayStats, ScenarioResult
from chaosctl.gameday.scenarios import SCENARIOS, Step, covering, get
from chaosctl.gameday.scoring import replay_objectives, score
from chaosctl.gameday.steps import check_step
from chaosctl.gameday.timeline import FAILED, OK, REPLAY
from chaosctl.gameday.traffic import GameDayTraffic as Traffic
from chaosctl.gameday.traffic import KeyUse, classify


@pytest.mark.parametrize("fault", FAULTS)
def test_every_fault_is_rehearsed(fault: str) -> None:
    assert covering(fault), f"no scenario rehearses {fault}"


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_step_is_valid(name: str) -> None:
    steps = SCENARIOS[name].actions
    assert steps, name
    for step in steps:
        check_step(step)


@pytest.mark.parametrize("step,needle", [
    (Step("inject", "payment-meltdown"), "cannot target"),
    (Step("clear", "service-down"), "cannot target"),  # not a Redis fault
    (Step("restart", "mainframe"), "cannot target"),
    (Step("explode", "redis"), "unknown step kind"),
    (Step("wait", "", {"s": 0}), "0 < s <= 60"),
])
def test_bad_steps_are_refused(step: Step, needle: str) -> None:
    with pytest.raises(InvalidInputError, match=needle):
        check_step(step)


def test_crash_mid_order_clock_starts_at_the_kill() -> None:
    crash = get("crash-mid-order")
    clock = [s for s in crash.actions if s.starts_clock]
    assert [(s.kind, s.target, s.options["service"]) for s in clock] == [
        ("inject", "service-down", "orders")]
    kinds = [(s.kind, s.target) for s in crash.actions]
    # slow payments first (requests pile up in orders), the crash, then the slowness goes
    assert kinds.index(("inject", "payment-latency")) < kinds.index(("inject", "service-down"))
    assert kinds[-1] == ("clear", "payment-latency")
    assert crash.playbook == "service-down" and crash.replay == "cut-off"
    redis = get("redis-restart")
    assert redis.playbook is None and redis.replay == "settled"
    assert [(s.kind, s.target) for s in redis.actions] == [("restart", "redis")]


def test_unknown_scenario_lists_the_valid_ones() -> None:
    with pytest.raises(InvalidInputError, match="crash-mid-order"):
        get("nope")


def _clean(scenario: str, expected: str | None, fired: str | None) -> ScenarioResult:
    from chaosctl.gameday.model import IntegrityReport

    r = ScenarioResult(scenario=scenario, expected_playbook=expected, mttd_s=2.0, mttr_s=5.0,
                       fired_playbook=fired, right_playbook=fired == expected, duplicates=0,
                       lost_events=0, rolled_back=True, integrity=IntegrityReport())
    r.after.success_rate = 1.0
    return r


def test_no_playbook_scenario_fails_when_one_fires() -> None:
    quiet = _clean("redis-restart", None, None)
    quiet.replay = ReplayStats("settled", keys=5, answered=5, replayed=5)
    score(quiet, get("redis-restart"))
    assert quiet.outcome == "pass", quiet.reason
    assert "time to detect" not in [o.name for o in quiet.objectives]
    noisy = _clean("redis-restart", None, "service-down")
    noisy.replay = ReplayStats("settled", keys=5, answered=5, replayed=5)
    score(noisy, get("redis-restart"))
    assert noisy.outcome == "fail" and "no playbook needed" in noisy.reason


def test_replay_objectives_can_fail() -> None:
    def failed(stats: ReplayStats) -> list[str]:
        return [o.name for o in replay_objectives(stats) if not o.passed]

    assert failed(ReplayStats("cut-off", keys=4, answered=4)) == []
    # nothing was cut off: the crash proved nothing
    assert failed(ReplayStats("cut-off")) == ["requests cut off by the disruption"]
    assert failed(ReplayStats("cut-off", keys=3, answered=2, unresolved=1)) == [
        "replayed keys answered"]
    assert failed(ReplayStats("settled", keys=3, answered=3, new_orders=1)) == [
        "replays answered with the original order"]


def test_classify_counts_202_as_recorded_failed_and_honours_the_replay_header() -> None:
    now = 1_000_000.0
    recorded = {"status": "payment_failed", "order_id": "o1", "created_at": now}
    assert classify(202, recorded, now) == FAILED
    assert classify(201, {"status": "completed", "created_at": now}, now) == OK
    for header in ("x-idempotency-replayed", "idempotent-replayed"):
        assert classify(201, {"status": "completed", "created_at": now}, now,
                        {header: "true"}) == REPLAY
        assert classify(202, recorded, now, {header: "true"}) == REPLAY


def test_cut_off_and_settled_keys() -> None:
    traffic = Traffic("http://127.0.0.1:1", rps=1, max_duration_s=1)
    body: dict = {"customer_id": "c", "items": []}
    traffic.uses = [
        KeyUse("done-early", body, 1.0, 1.2, 201, "o1", False),
        KeyUse("failed-recorded", body, 2.0, 2.5, 202, "o2", False),
        KeyUse("in-flight", body, 9.0, 10.5, None, None, False),  # no answer: cut off
        KeyUse("in-flight-502", body, 9.5, 10.1, 502, None, False),
        KeyUse("conflict", body, 9.8, 10.2, 409, None, False),
        KeyUse("after", body, 12.0, 12.1, 502, None, False),  # sent after the crash window
        KeyUse("finished-in-time", body, 9.0, 9.9, 201, "o3", False),
        KeyUse("done-early", body, 20.0, 20.1, 201, "o1", True),  # a later replay of a key
    ]
    cut = {u.key for u in traffic.cut_off(10.0, 10.0)}
    assert cut == {"in-flight", "in-flight-502", "conflict"}
    settled = traffic.settled_before(10.0)
    assert [u.key for u in settled] == ["done-early", "failed-recorded", "finished-in-time"]
    assert settled[0].order_id == "o1" and not settled[0].replayed  # the FIRST use

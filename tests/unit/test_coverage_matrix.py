"""Every fault `chaosctl inject` can apply is rehearsed by a game-day scenario, and that
scenario names a playbook that exists (and is valid): no injectable fault is left without a
way to detect and repair it.

The matrix (fault -> scenario's expected playbook) as agreed with the game-day side:
payment-errors, payment-latency, retry-storm -> payment-degradation; inventory-lock ->
inventory-lock-contention; inventory-errors -> inventory-errors; service-down, service-hang ->
service-down; notifications-down -> outbox-backlog; overload -> gateway-overload.
"""

from __future__ import annotations

import pytest

from chaosctl.domain import FAULTS
from chaosctl.gameday.scenarios import SCENARIOS
from chaosctl.playbook.library import load_catalog

EXPECTED = {
    "payment-errors": "payment-degradation",
    "payment-latency": "payment-degradation",
    "inventory-lock": "inventory-lock-contention",
    "inventory-errors": "inventory-errors",
    "service-down": "service-down",
    "service-hang": "service-down",
    "notifications-down": "outbox-backlog",
    "overload": "gateway-overload",
    "retry-storm": "payment-degradation",
}


@pytest.fixture(scope="module")
def playbooks() -> set[str]:
    return set(load_catalog(check_promql=False).names())


def test_matrix_lists_every_fault_of_the_catalogue() -> None:
    # A new fault must be added here (and get a scenario and a playbook), not slip through.
    assert set(EXPECTED) == set(FAULTS)


@pytest.mark.parametrize("fault", FAULTS)
def test_fault_has_a_scenario_whose_playbook_exists(fault: str, playbooks: set[str]) -> None:
    scenarios = [s for s in SCENARIOS.values() if s.fault == fault]
    assert scenarios, f"no game-day scenario injects {fault!r}; add one to " \
                      "chaosctl/gameday/scenarios.py"
    expected = {s.playbook for s in scenarios}
    missing = expected - playbooks
    assert not missing, f"scenario(s) for {fault!r} expect playbook(s) {sorted(missing)} " \
                        f"that do not exist in playbooks/ (have: {sorted(playbooks)})"
    assert EXPECTED[fault] in expected, (
        f"no scenario for {fault!r} expects {EXPECTED[fault]!r} (they expect {sorted(expected)})")


def test_every_scenario_names_a_known_fault_and_playbook(playbooks: set[str]) -> None:
    # A scenario may rehearse no catalogue fault (fault None, e.g. a Redis restart) and expect
    # no playbook (None); what it does name must exist.
    for scenario in SCENARIOS.values():
        assert scenario.fault is None or scenario.fault in FAULTS, \
            f"{scenario.name}: unknown fault {scenario.fault!r}"
        assert scenario.playbook is None or scenario.playbook in playbooks, \
            f"{scenario.name}: unknown playbook {scenario.playbook!r}"

"""The catch-all's `clear_worst_chaos`: which service's chaos it picks, and its params."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from chaosctl.health import ChaosKey
from chaosctl.playbook.registry import get_action
from chaosctl.playbook.steps_triage import chaos_by_service, rank_services


def keys(*names: str) -> list[ChaosKey]:
    return [ChaosKey(key=n, value="1", ttl_s=60) for n in names]


def test_chaos_by_service_groups_set_keys() -> None:
    found = chaos_by_service(keys("chaos:payments:latency_ms", "chaos:inventory:error_rate",
                                  "chaos:payments:error_rate"))
    assert found == {"payments": ["latency_ms", "error_rate"], "inventory": ["error_rate"]}


def test_chaos_by_service_ignores_unknown_keys() -> None:
    assert chaos_by_service(keys("chaos:orders:error_rate", "chaos:payments:nope", "x")) == {}


def test_worst_service_is_the_one_with_most_failed_calls() -> None:
    assert rank_services(["payments", "inventory"], {"inventory": 40.0, "payments": 3.0}) == [
        "inventory", "payments"]
    assert rank_services(["payments", "inventory"], {"payments": 9.0}) == [
        "payments", "inventory"]


def test_tie_keeps_catalogue_order() -> None:
    assert rank_services(["inventory", "payments"], {}) == ["payments", "inventory"]


def test_registered_as_mutating_with_a_duration_window() -> None:
    spec = get_action("clear_worst_chaos")
    assert spec is not None and spec.mutating
    assert spec.params.model_validate({"window": "2m"}).window == 120.0  # type: ignore[attr-defined]
    with pytest.raises(ValidationError):
        spec.params.model_validate({"window": "soon"})
    with pytest.raises(ValidationError):
        spec.params.model_validate({"service": "payments"})

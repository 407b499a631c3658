"""The six configurations are the study's, as the stack's own settings parser reads them: every
variable is one the services know (a typo would be ignored silently: extra variables are),
and the switches say what the labels say."""

from __future__ import annotations

import os

import pytest
from shop.resilience import RetryPolicy
from shop.settings import ShopEnv, ShopSettings

from chaosctl.experiment.configs import CONFIGS


def settings_of(name: str, monkeypatch: pytest.MonkeyPatch) -> ShopSettings:
    for var in [v for v in os.environ if v.startswith("SHOP_")]:
        monkeypatch.delenv(var)
    for var, value in CONFIGS[name].env.items():
        monkeypatch.setenv(var, value)
    return ShopSettings.from_env("orders")


@pytest.mark.parametrize("name", list(CONFIGS))
def test_every_variable_is_a_shop_setting(name: str) -> None:
    known = {f"SHOP_{field.upper()}" for field in ShopEnv.model_fields}
    unknown = set(CONFIGS[name].env) - known
    assert not unknown, f"{name}: the services do not read {sorted(unknown)}"


def test_a_has_none_of_the_patterns(monkeypatch: pytest.MonkeyPatch) -> None:
    a = settings_of("A", monkeypatch)
    assert not (a.retries or a.breakers or a.bulkheads or a.load_shedding or a.idempotency
                or a.outbox)
    assert min(a.hop_timeouts.values()) >= 60 and a.request_budget_s >= 60


@pytest.mark.parametrize("name", ["B", "C", "D", "E"])
def test_b_to_e_retry_immediately_three_times_without_budget_or_outbox(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings_of(name, monkeypatch)
    assert s.retries and s.retry_max_attempts == 4
    assert s.retry_backoff_s == 0 and not s.retry_jitter
    policy = RetryPolicy(max_attempts=4, base_delay_s=s.retry_backoff_s, jitter=s.retry_jitter)
    assert [policy.delay(n) for n in (1, 2, 3)] == [0.0, 0.0, 0.0]
    assert s.retry_budget_ratio >= 100  # no budget: every failure retried
    assert not s.idempotency and not s.outbox


def test_each_configuration_adds_its_patterns(monkeypatch: pytest.MonkeyPatch) -> None:
    b, c, d, e = (settings_of(n, monkeypatch) for n in "BCDE")
    assert b.hop_timeouts["payments"] >= 60 and c.hop_timeouts["payments"] == 2.0
    assert not c.breakers and d.breakers and not d.bulkheads
    assert e.bulkheads and e.load_shedding


def test_f_is_the_stacks_normal_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    assert CONFIGS["F"].env == {}
    f = settings_of("F", monkeypatch)
    assert f.idempotency and f.outbox and f.breakers and f.bulkheads and f.load_shedding
    assert f.retry_jitter and f.retry_backoff_s == 0.05 and f.retry_budget_ratio == 0.3


def test_no_jitter_backoff_doubles_up_to_the_cap() -> None:
    policy = RetryPolicy(base_delay_s=0.3, max_delay_s=1.0, jitter=False)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [0.3, 0.6, 1.0, 1.0]
    jittered = RetryPolicy(base_delay_s=0.3, max_delay_s=1.0)
    assert jittered.delay(2, rng=lambda: 0.5) == pytest.approx(0.3)

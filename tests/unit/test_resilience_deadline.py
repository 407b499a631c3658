"""X-Deadline parsing and per-hop timeouts, with an injected wall clock."""

from __future__ import annotations

import pytest
from shop.resilience import DEADLINE_HEADER, Deadline, DeadlineExceededError

NOW = 1_700_000_000.0


def now() -> float:
    return NOW


def test_header_name() -> None:
    assert DEADLINE_HEADER == "X-Deadline"


def test_valid_header_is_used() -> None:
    header = str(int((NOW + 2.5) * 1000))
    d = Deadline.from_header(header, default_budget_s=10.0, now=now)
    assert d.at == pytest.approx(NOW + 2.5)
    assert d.remaining(now) == pytest.approx(2.5)


def test_header_never_extended_by_default_budget() -> None:
    past = str(int((NOW - 1) * 1000))
    d = Deadline.from_header(past, default_budget_s=10.0, now=now)
    assert d.expired(now)
    assert d.remaining(now) == pytest.approx(-1.0)


@pytest.mark.parametrize(
    "value", [None, "", "   ", "abc", "12.5e3", "-1700000000000", "0", "1e12", "0x10", "١٢٣"]
)
def test_missing_or_malformed_header_falls_back_to_default(value: str | None) -> None:
    d = Deadline.from_header(value, default_budget_s=3.0, now=now)
    assert d.at == pytest.approx(NOW + 3.0)


def test_round_trip_through_header_never_extends() -> None:
    d = Deadline(NOW + 1.2345678)
    header = d.to_header()
    assert header.isdigit()
    again = Deadline.from_header(header, default_budget_s=99, now=now)
    assert again.at <= d.at
    assert d.at - again.at < 0.001


def test_after_and_expired() -> None:
    d = Deadline.after(0.5, now=now)
    assert not d.expired(now)
    assert d.expired(lambda: NOW + 0.5)


def test_hop_timeout_is_min_of_hop_and_remaining() -> None:
    d = Deadline(NOW + 2.0)
    assert d.hop_timeout(5.0, now=now) == pytest.approx(2.0)
    assert d.hop_timeout(0.3, now=now) == pytest.approx(0.3)
    with pytest.raises(DeadlineExceededError):
        d.hop_timeout(5.0, now=lambda: NOW + 2.0)
    with pytest.raises(DeadlineExceededError):
        d.hop_timeout(5.0, now=lambda: NOW + 10.0)

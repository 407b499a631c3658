"""The fault catalogue refuses every bad value with exit 2 and a message naming the range."""

from __future__ import annotations

import pytest

from chaosctl.chaos.catalogue import validate
from chaosctl.domain import FAULTS, MAX_BURST_REQUESTS, parse_duration
from chaosctl.errors import ExitCode, InvalidInputError


@pytest.mark.parametrize(("text", "seconds"), [
    ("30s", 30.0), ("2m", 120.0), ("500ms", 0.5), ("1h", 3600.0), ("45", 45.0), (7, 7.0),
    ("1.5s", 1.5), ("0", 0.0),
])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["-5s", "abc", "10 parsecs", "", "5d"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(InvalidInputError) as err:
        parse_duration(text, "--for")
    assert "--for" in str(err.value)


def test_redis_faults_map_to_the_contract_keys() -> None:
    req = validate("payment-errors", rate=0.2)
    assert req.redis_fault is not None and req.redis_fault.key == "chaos:payments:error_rate"
    assert (req.value, req.ttl_s) == (0.2, 600)
    assert validate("payment-latency", ms=3000).redis_fault.key == "chaos:payments:latency_ms"
    assert validate("inventory-lock", ms=2000, ttl="2s").redis_fault.key == \
        "chaos:inventory:lock_contention_ms"
    assert validate("inventory-errors", rate=1).redis_fault.key == "chaos:inventory:error_rate"


@pytest.mark.parametrize(("fault", "options", "needle"), [
    ("payment-errors", {"rate": 1.5}, "0 < rate <= 1"),
    ("payment-errors", {"rate": 0}, "0 < rate <= 1"),
    ("payment-errors", {"rate": -0.1}, "0 < rate <= 1"),
    ("payment-errors", {}, "needs --rate"),
    ("inventory-errors", {"rate": 2}, "0 < rate <= 1"),
    ("payment-latency", {"ms": -5}, "1..60000"),
    ("payment-latency", {"ms": 60001}, "1..60000"),
    ("payment-latency", {"ms": 2.5}, "whole milliseconds"),
    ("inventory-lock", {}, "needs --ms"),
    ("payment-errors", {"rate": 0.2, "ttl": 0}, "--ttl 0 is refused"),
    ("payment-errors", {"rate": 0.2, "ttl": "0s"}, "--ttl 0 is refused"),
    ("payment-errors", {"rate": 0.2, "ttl": "500ms"}, "whole seconds"),
    ("payment-errors", {"rate": 0.2, "ttl": "2d"}, "not a duration"),
    ("payment-errors", {"rate": 0.2, "ttl": "25h"}, "86400"),
    ("service-down", {"service": "nope"}, "gateway, orders, payments, inventory, notifications"),
    ("service-down", {"service": None}, "valid services"),
    ("service-hang", {"service": "redis"}, "valid services"),
    ("service-down", {"service": "payments", "for_": "-1s"}, "negative"),
    ("service-down", {"service": "payments", "for_": "20m"}, "longer than --ttl"),
    ("overload", {"rps": 0}, "1..2000"),
    ("overload", {"rps": 5000}, "1..2000"),
    ("overload", {"for_": "0"}, "--for 0 is refused"),
    ("overload", {"for_": "2h", "ttl": "3h"}, "up to 3600s"),
    ("retry-storm", {"retries": 0}, "1..20"),
    ("retry-storm", {"rate": 1.2}, "0 < rate <= 1"),
    ("bogus", {}, ", ".join(FAULTS)),
])
def test_bad_values_exit_2_naming_the_range(fault: str, options: dict, needle: str) -> None:
    with pytest.raises(InvalidInputError) as err:
        validate(fault, **options)
    assert err.value.exit_code == ExitCode.USAGE
    assert needle in str(err.value)


def test_process_faults() -> None:
    down = validate("service-down", service="payments")
    assert (down.service, down.for_s) == ("payments", 30.0)
    assert validate("service-down", service="orders", for_=0).for_s == 0.0  # until cleared
    assert validate("service-hang", service="inventory").for_s == 20.0
    notif = validate("notifications-down", for_="1m")
    assert (notif.service, notif.for_s) == ("notifications", 60.0)


def test_bursts_are_bounded() -> None:
    burst = validate("overload", rps=1000, for_="60s")
    assert burst.params["max_requests"] == 60_000 and burst.for_s == 60.0
    huge = validate("overload", rps=2000, for_="1h", ttl="2h")
    assert huge.params["max_requests"] == MAX_BURST_REQUESTS
    storm = validate("retry-storm", rps=10, for_="10s", retries=3)
    assert storm.value == 0.5 and storm.params["retries"] == 3
    assert storm.params["max_requests"] == 100 * 4  # each arrival may be 1 + 3 requests

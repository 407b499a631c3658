"""Load generator pieces that need no server: loopback-only targets, bounds, percentiles."""

from __future__ import annotations

import pytest

from chaosctl.chaos.load import LoadConfig, LoadStats, retry_failed_orders
from chaosctl.clients.http import require_loopback
from chaosctl.errors import InvalidInputError


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://localhost:1",
                                 "http://127.3.4.5:80", "http://[::1]:8000"])
def test_loopback_targets_allowed(url: str) -> None:
    assert require_loopback(url) == url


@pytest.mark.parametrize("url", ["http://10.0.0.1:8000", "http://example.com",
                                 "http://0.0.0.0:8000", "http://:8000"])
def test_other_targets_refused(url: str) -> None:
    with pytest.raises(InvalidInputError, match="loopback"):
        LoadConfig(base_url=url, rps=1, duration_s=1, max_requests=1)


@pytest.mark.parametrize("field", ["rps", "duration_s", "max_requests"])
def test_unbounded_configs_refused(field: str) -> None:
    values = {"rps": 1.0, "duration_s": 1.0, "max_requests": 1, field: 0}
    with pytest.raises(InvalidInputError):
        LoadConfig(base_url="http://127.0.0.1:1", **values)


def test_snapshot_percentiles() -> None:
    stats = LoadStats(sent=3, ok=2, latencies=[0.01, 0.02, 0.03], started_at=1.0, ended_at=2.0,
                      status_counts={"201": 2, "503": 1})
    snap = stats.snapshot()
    assert snap["p50_ms"] == 20.0 and snap["p99_ms"] == 30.0 and snap["elapsed_s"] == 1.0
    assert snap["status_counts"] == {"201": 2, "503": 1}


def test_retry_predicate() -> None:
    assert retry_failed_orders(503, None)
    assert retry_failed_orders(429, None)
    assert retry_failed_orders(201, {"status": "payment_failed"})
    assert not retry_failed_orders(201, {"status": "completed"})
    assert not retry_failed_orders(422, {"error": "invalid_request"})


def test_202_is_recorded_failed_and_retried() -> None:
    stats = LoadStats(sent=3, ok=1, recorded_failed=2, status_counts={"201": 1, "202": 2})
    snap = stats.snapshot()
    assert snap["ok"] == 1 and snap["recorded_failed"] == 2 and snap["errors"] == 0
    assert retry_failed_orders(202, {"status": "payment_failed", "order_id": "o1"})


def test_stop_after_the_run_ended_is_harmless() -> None:
    """The game day stops its traffic after the generator may already have finished."""
    import asyncio

    from chaosctl.chaos.load import LoadGenerator
    from tests.support import free_port

    # Nothing listens on the port: every request fails at once, nothing is served.
    generator = LoadGenerator(LoadConfig(base_url=f"http://127.0.0.1:{free_port()}", rps=5,
                                         duration_s=0.5, max_requests=2, timeout_s=1.0))
    result = asyncio.run(generator.run())
    assert result["sent"] == 2 and result["errors"] == 2 and result["recorded_failed"] == 0
    generator.stop()  # its loop is closed by now: must not raise

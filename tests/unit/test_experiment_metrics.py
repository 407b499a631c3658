"""The experiment's metrics from recorded samples (chaosctl.experiment.measure, probe's
parser): no stack, no clock."""

from __future__ import annotations

import math

import pytest

from chaosctl.experiment.measure import (
    ERROR,
    FAILED,
    OK,
    SHED,
    Counters,
    Request,
    breaker_open_pct,
    counter_metrics,
    difference,
    duplicate_pct,
    histogram_quantile,
    median_of,
    mttr,
    outcome,
    request_metrics,
)
from chaosctl.experiment.probe import parse_counters


def test_outcome_classifies_the_order_contract() -> None:
    assert outcome(201, {"status": "completed"}) == OK
    assert outcome(202, {"status": "payment_failed"}) == FAILED
    assert outcome(200, {"status": "payment_failed"}) == FAILED  # a replay of a failure
    assert outcome(409, {}) == FAILED
    assert outcome(429, None) == SHED
    assert outcome(503, None) == ERROR
    assert outcome(None, None) == ERROR  # no answer


def test_request_metrics_count_requests_sent_in_the_window() -> None:
    reqs = [Request(0.5, 10.0, OK)]  # before the window: left out
    reqs += [Request(1.0 + i * 0.1, float(i + 1), OK) for i in range(80)]
    reqs += [Request(9.0, 500.0, FAILED)] * 10
    reqs += [Request(9.5, 1.0, SHED)] * 5
    reqs += [Request(9.9, 30_000.0, ERROR)] * 5
    reqs += [Request(10.0, 10.0, OK)]  # at the end: left out
    m = request_metrics(reqs, 1.0, 10.0)
    assert m["requests"] == 100
    assert m["success_pct"] == 80.0
    assert m["shed_pct"] == 5.0
    assert m["error_5xx_pct"] == 5.0
    # 95 admitted (shed left out): 80 fast ones, 10 at 500 ms, then 5 that got no answer,
    # counted at the 30 s the client waited. Nearest rank: P90 is rank 86, P95 rank 91.
    assert m["p50_ms"] == 48.0
    assert m["p95_ms"] == 30_000.0
    assert m["p99_ms"] == 30_000.0
    fewer = request_metrics([r for r in reqs if r.outcome != ERROR], 1.0, 10.0)
    assert fewer["p95_ms"] == 500.0 and fewer["error_5xx_pct"] == 0.0


def test_request_metrics_without_requests_are_none() -> None:
    m = request_metrics([], 0.0, 5.0)
    assert m["requests"] == 0 and m["success_pct"] is None and m["p95_ms"] is None


def _second(t: float, ok: int, bad: int) -> list[Request]:
    return [Request(t + 0.01 * i, 5.0, OK) for i in range(ok)] + [
        Request(t + 0.5 + 0.01 * i, 5.0, FAILED) for i in range(bad)]


def test_mttr_is_the_start_of_the_first_sustained_healthy_run() -> None:
    fault_end = 20.0
    reqs = []
    for s in range(0, 3):  # 3 bad seconds
        reqs += _second(fault_end + s, 5, 5)
    reqs += _second(fault_end + 3, 10, 0)  # one good second, then a relapse
    reqs += _second(fault_end + 4, 5, 5)
    for s in range(5, 15):  # recovered from second 5 on
        reqs += _second(fault_end + s, 19, 1)  # exactly 95 % counts
    reqs += _second(fault_end - 1, 0, 10)  # during the fault: ignored
    assert mttr(reqs, fault_end, fault_end + 15, hold_s=5) == 5.0
    # Not yet observed long enough to see 5 healthy seconds: unknown.
    assert mttr(reqs, fault_end, fault_end + 9, hold_s=5) is None
    assert mttr(reqs, fault_end, fault_end + 10, hold_s=5) == 5.0


def test_mttr_is_zero_when_the_stack_never_suffered_after_the_fault() -> None:
    reqs = [r for s in range(6) for r in _second(30.0 + s, 4, 0)]
    assert mttr(reqs, 30.0, 36.0, hold_s=3) == 0.0


def test_mttr_an_empty_second_breaks_the_run() -> None:
    reqs = _second(0, 5, 0) + _second(1, 5, 0) + _second(3, 5, 0) + _second(4, 5, 0)
    assert mttr(reqs, 0.0, 5.0, hold_s=3) is None


def test_breaker_open_share_skips_unreadable_samples() -> None:
    samples = {0: 0, 1: 1, 2: 2, 3: 0, 4: -1, 5: 1, 9: 1}
    assert breaker_open_pct(samples, 1, 6) == 75.0  # 1, 2, 3, 5 read; 3 of them open
    assert breaker_open_pct({1: -1}, 0, 5) is None


def test_histogram_quantile_from_bucket_deltas() -> None:
    before = {0.05: 10.0, 0.1: 10.0, 0.5: 10.0, math.inf: 10.0}
    # 100 new observations: 90 under 50 ms, 6 under 100 ms, 4 under 500 ms.
    after = {0.05: 100.0, 0.1: 106.0, 0.5: 110.0, math.inf: 110.0}
    assert histogram_quantile(before, after, 0.5) == 0.05
    assert histogram_quantile(before, after, 0.95) == 0.1
    assert histogram_quantile(before, after, 0.99) == 0.5
    assert histogram_quantile(after, after, 0.95) is None  # nothing new
    # Beyond the last finite bucket: its bound (a lower limit of the truth).
    assert histogram_quantile({}, {0.5: 1.0, math.inf: 10.0}, 0.95) == 0.5


def test_counter_metrics() -> None:
    before = Counters(orders=100, payment_calls=100, payment_retries=0,
                      bulkhead_rejections=2, payment_buckets={0.1: 100, math.inf: 100})
    # 520 calls sent, 320 of them retries: 200 logical calls, 2.6 sent per logical call.
    after = Counters(orders=300, payment_calls=620, payment_retries=320,
                     bulkhead_rejections=52, payment_buckets={0.1: 600, math.inf: 620})
    m = counter_metrics(before, after)
    assert m == {"raf": 2.6, "bulkhead_rejection_pct": 25.0, "payment_p95_ms": 100.0}
    assert counter_metrics(after, after)["raf"] is None  # no call: no ratio
    # orders' /metrics did not answer at one edge: no figure rather than a wrong one (its
    # zeros would make the window's delta a whole run's calls, or negative).
    unread = Counters(complete=False)
    nothing = {"raf": None, "bulkhead_rejection_pct": None, "payment_p95_ms": None}
    assert counter_metrics(unread, after) == nothing
    assert counter_metrics(before, unread) == nothing


def test_duplicates_and_difference() -> None:
    assert duplicate_pct(orders=107, keys=100) == 7.0
    assert duplicate_pct(0, 0) is None
    assert difference(93.9, 80.2) == 13.7
    assert difference(None, 80.2) is None and difference(1.0, None) is None


def test_median_over_repeats() -> None:
    runs = [{"requests": 10, "p95_ms": 100.0, "mttr_s": None, "recovered": True},
            {"requests": 12, "p95_ms": 300.0, "mttr_s": 4.0, "recovered": False},
            {"requests": 11, "p95_ms": 200.0, "mttr_s": 6.0, "recovered": True}]
    assert median_of(runs) == {"requests": 33, "p95_ms": 200.0, "mttr_s": 5.0,
                               "recovered": False}


ORDERS_METRICS = """\
# TYPE orders_total counter
orders_total{status="completed"} 90.0
orders_total{status="payment_failed"} 10.0
# TYPE downstream_requests_total counter
downstream_requests_total{to_service="payments"} 130.0
downstream_requests_total{to_service="inventory"} 100.0
# TYPE retry_requests_total counter
retry_requests_total{downstream="payments"} 30.0
retry_requests_total{downstream="inventory"} 3.0
# TYPE bulkhead_rejections_total counter
bulkhead_rejections_total{downstream="inventory"} 4.0
# TYPE downstream_request_duration_seconds histogram
downstream_request_duration_seconds_bucket{le="0.1",to_service="payments"} 120.0
downstream_request_duration_seconds_bucket{le="+Inf",to_service="payments"} 130.0
downstream_request_duration_seconds_bucket{le="0.1",to_service="inventory"} 1.0
downstream_request_duration_seconds_count{to_service="payments"} 130.0
"""


def test_parse_counters_reads_the_stacks_own_names() -> None:
    c = parse_counters(ORDERS_METRICS, "# TYPE load_shed_total counter\nload_shed_total 7.0\n")
    assert (c.orders, c.payment_calls, c.payment_retries, c.bulkhead_rejections,
            c.load_shed) == (100.0, 130.0, 30.0, 4.0, 7.0)
    assert c.payment_buckets == {0.1: 120.0, math.inf: 130.0}
    assert parse_counters("", "") == Counters()
    assert parse_counters(None, "") == Counters(complete=False)
    assert parse_counters(ORDERS_METRICS, None).complete  # shed is counted by the client


@pytest.mark.parametrize("text", ["A,d , f", "a,A,D,F"])
def test_parse_configs_normalises(text: str) -> None:
    from chaosctl.experiment.configs import parse_configs

    assert parse_configs(text)[0] == "A"

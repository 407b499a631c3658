"""The paper's figures (awaregh/Failure-Recovery-Patterns-in-Microservices, paper/paper.md, as
quoted in issue 14), in the units our metrics use, and which metrics each scenario's table
shows. "A/B" in the paper (one figure for both) is entered for A and for B."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    key: str  # the field of CellMetrics
    label: str
    unit: str  # "%", "ms", "s", "x"
    lower_is_better: bool
    meaning: str


METRICS: dict[str, Metric] = {m.key: m for m in (
    Metric("success_pct", "success", "%", False,
           "orders answered 201 (completed) among all requests sent; 202, 5xx, 429 and no "
           "answer all count as not successful"),
    Metric("p50_ms", "P50", "ms", True, "client latency, median, admitted requests"),
    Metric("p95_ms", "P95", "ms", True,
           "client latency, 95th percentile of admitted requests (all but 429; a request "
           "with no answer counts at the time the client gave up)"),
    Metric("p99_ms", "P99", "ms", True, "client latency, 99th percentile, admitted"),
    Metric("raf", "retry amplification", "x", True,
           "payments calls sent by orders / logical payments calls (sent minus retries; "
           "the stack's own counters)"),
    Metric("breaker_open_pct", "breaker open", "%", True,
           "share of 1 s samples of the fault phase with any breaker not closed"),
    Metric("mttr_s", "MTTR", "s", True,
           "fault end -> the first second from which success >= 95 % holds for --hold"),
    Metric("duplicate_pct", "duplicate writes", "%", True,
           "orders per idempotency key beyond the first / keys, from the orders database"),
    Metric("shed_pct", "shed", "%", True, "requests answered 429 / requests sent"),
    Metric("error_5xx_pct", "5xx", "%", True,
           "requests answered 500-599 or not at all / requests sent"),
    Metric("payment_p95_ms", "payment P95", "ms", True,
           "95th percentile of orders -> payments calls (the stack's histogram)"),
    Metric("bulkhead_rejection_pct", "bulkhead rejections", "%", True,
           "calls refused by a full bulkhead at orders / orders handled"),
)}

# scenario -> metric -> config -> the paper's figure
PAPER: dict[str, dict[str, dict[str, float]]] = {
    "payment_errors": {
        "success_pct": {"A": 80.2, "B": 51.3, "C": 58.7, "D": 92.1, "E": 93.8, "F": 93.9},
        "p95_ms": {"A": 340, "B": 890, "C": 820, "D": 210, "E": 190, "F": 185},
        "raf": {"A": 1.0, "B": 2.6, "C": 2.5, "D": 1.1, "E": 1.1, "F": 1.1},
        "breaker_open_pct": {"D": 38, "E": 35, "F": 34},
    },
    "payment_slow": {
        "success_pct": {"A": 72, "C": 81, "D": 88, "E": 91},
        "p95_ms": {"A": 18_200, "C": 8_100, "D": 200, "E": 185},
        "p99_ms": {"A": 21_000, "C": 9_200, "D": 310, "E": 280},
        "mttr_s": {"A": 130, "C": 120, "D": 35, "E": 32},
    },
    "inventory_lock": {
        "p95_ms": {"A": 4_200, "C": 2_800, "E": 2_600},
        "payment_p95_ms": {"A": 4_100, "C": 2_700, "E": 110},
        "bulkhead_rejection_pct": {"E": 18},
    },
    "retry_storm": {
        "raf": {"B": 2.8, "C": 2.7, "D": 1.1, "F": 1.1},
        "success_pct": {"B": 48, "C": 54, "D": 91, "F": 91},
        "duplicate_pct": {"B": 9.3, "C": 8.1, "D": 0.8, "F": 0.0},
    },
    "gateway_overload": {
        "p95_ms": {"A": 15_400, "B": 15_400, "E": 380},
        "shed_pct": {"A": 0, "B": 0, "E": 51},
        "error_5xx_pct": {"A": 42, "B": 42, "E": 3},
    },
}

# The rows of each scenario's table: the paper's metrics (inventory_lock's P95 is "orders P95").
TABLE_ROWS: dict[str, tuple[str, ...]] = {name: tuple(rows) for name, rows in PAPER.items()}
TABLE_ROWS["baseline"] = ("success_pct", "p50_ms", "p95_ms", "p99_ms", "raf")


def paper_value(scenario: str, metric: str, config: str) -> float | None:
    return PAPER.get(scenario, {}).get(metric, {}).get(config)

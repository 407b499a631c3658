"""`chaosctl experiment --json`: the study's matrix, measured here, beside the paper's."""

from __future__ import annotations

from typing import Annotated, Literal

from chaosctl.results import Keys, Result


class Metrics(Result):
    """One cell's figures (the median over --repeat runs). Rates are percentages, latency in
    ms, MTTR in s, retry amplification a ratio; null when the cell gave nothing to measure
    (no breakers in the configuration, no order handled, no fault to recover from)."""

    requests: int
    success_pct: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    raf: float | None
    breaker_open_pct: float | None
    mttr_s: float | None
    recovered: bool | None  # null for a baseline; false: not recovered within --recover-max
    duplicate_pct: float | None
    shed_pct: float | None
    error_5xx_pct: float | None
    payment_p95_ms: float | None
    bulkhead_rejection_pct: float | None


class Comparison(Result):
    """One row of the paper's table for this cell: diff is ours - paper (same unit)."""

    metric: str
    unit: Literal["%", "ms", "s", "x"]
    ours: float | None
    paper: float | None
    diff: float | None


class Cell(Result):
    config: str
    scenario: str  # a scenario, or "baseline" (the configuration without a fault)
    status: Literal["measured", "error"]  # error: the cell could not be run (reason says why)
    reason: str | None
    metrics: Metrics | None
    runs: list[Metrics]
    table: list[Comparison]
    fault_s: float
    started_at: float
    duration_s: float


class ConfigInfo(Result):
    name: str
    label: str
    env: Annotated[dict[str, str], Keys("SHOP_VARIABLE")]
    note: str


class ScenarioInfo(Result):
    name: str
    description: str
    fault: str


class Options(Result):
    quick: bool
    rps: float
    duration_s: float
    baseline_s: float
    hold_s: float
    recover_max_s: float
    repeat: int
    client_timeout_s: float


class ExperimentResult(Result):
    """planned/completed count cells; interrupted: Ctrl-C ended the run early (the cells
    already measured are kept); restored: the stack is back in its normal configuration."""

    machine: str
    options: Options
    configs: list[ConfigInfo]
    scenarios: list[ScenarioInfo]
    cells: list[Cell]
    planned: int
    completed: int
    interrupted: bool
    restored: bool
    stack: Literal["running", "started"]  # running: it was up before; started: by us
    started_at: float
    duration_s: float
    report_path: str | None

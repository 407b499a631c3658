"""`chaosctl experiment`: the seed study's results tables, measured on this machine."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from chaosctl.cli.shapes import help_block
from chaosctl.results.experiment import ExperimentResult, Metrics

EXPERIMENT_HELP = """Reproduce the seed study's results tables on this machine, beside the paper's.

The study (awaregh/Failure-Recovery-Patterns-in-Microservices, paper/paper.md) measured six
configurations of one stack under five failure scenarios. For each configuration this command
restarts the five services with its SHOP_* switches, measures a baseline (no fault), then
each scenario: a 1 s lead-in, the fault (chaosctl's own, with a TTL) for --duration, then
recovery watched for up to --recover-max. Traffic is chaosctl's load generator, open loop at
--rps orders/s, each order with its own Idempotency-Key.

\b
Configurations (stack/shop/settings.py knobs; differences from the paper noted):
  A none: retries, breakers, bulkheads, shedding, idempotency, outbox off
    (orders notifies notifications in the request); timeouts 120 s
  B retries: 4 attempts, immediate (no backoff, no jitter), no retry
    budget; timeouts 120 s
  C B + per-hop timeouts (payments 2 s, inventory 2.5 s, budget 10 s)
  D C + circuit breakers      E D + bulkheads + load shedding
  F the stack's normal configuration: E + idempotency keys + the
    transactional outbox, with the stack's own retries (jittered backoff,
    30 % retry budget) instead of B's

\b
Scenarios (chaosctl faults):
  payment_errors    payment-errors --rate 0.2
  payment_slow      payment-latency --ms 3000
  inventory_lock    inventory-lock --ms 2000
  retry_storm       retry-storm --rate 0.5 (storm worker at --rps, 3 retries)
                    + the measured client re-sends failures 3x, same key
  gateway_overload  overload at 9 x --rps on top of --rps (a 10x spike)

\b
Metrics (fault phase: requests SENT while the fault was on):
  success      201 completed orders / requests (202, 5xx, 429, no answer fail)
  P50/P95/P99  client latency of admitted requests (all but 429; no answer
               counts at the client timeout, 30 s; 15 s with --quick)
  retry amp.   orders->payments calls sent / logical calls sent (sent -
               retries sent)
  breaker open 1 s samples with any breaker not closed / samples (D-F)
  MTTR         fault end -> first second from which success >= 95 % holds
               for --hold (by send time); "not recovered" past --recover-max
  duplicates   orders per idempotency key beyond the first / keys (orders DB)
  shed, 5xx    429 answers, and 5xx or no answer, / requests
  payment P95  orders->payments call latency (the stack's histogram)
  bulkhead     bulkhead refusals at orders / orders handled

The stack: the one of CHAOSCTL_HOME and its ports. When it is running, the experiment
uses it (no faults may be active) and restarts its services in the normal configuration at
the end; when it is not, the experiment starts it and stops it again at the end. Either way
the normal configuration is restored, on Ctrl-C too (cells already measured are kept and
reported; exit 130). A cell whose configuration collapses is a result, not an error.

--quick: configurations A and E, payment_errors and payment_slow, 10 orders/s, 15 s faults,
5 s baselines, recovery up to 40 s: under 5 minutes on 2 cores. The full matrix (6 x 6
cells) with --duration 40s --baseline 15s --recover-max 60s took 38 minutes here; at the
defaults plan about 90 minutes. Reports: experiment-TIME.html (grouped bar charts
per metric with the paper's figure marked, and the tables) and .json in --report.

Exit 0 when every cell was measured and the stack restored, 1 when a cell could not be
run or the restore failed, 2 for bad input, 130 when interrupted (after the restore).

"""

EXPERIMENT_HELP += "\n" + help_block(
    "--json prints one object (stable shape); rates in %, latency in ms, MTTR in s; each "
    "cell's table holds the rows of the paper's table for its scenario:", ExperimentResult,
    {Metrics: "METRICS"})


def register(app: typer.Typer) -> None:
    app.command("experiment", help=EXPERIMENT_HELP)(experiment)


def experiment(
    configs: Annotated[str | None, typer.Option(
        "--configs", help="Configurations, e.g. A,D,F [default: A,B,C,D,E,F]",
        show_default=False)] = None,
    scenarios: Annotated[str | None, typer.Option(
        "--scenarios", help="Scenarios, e.g. payment_errors,retry_storm [default: all five]",
        show_default=False)] = None,
    duration: Annotated[str | None, typer.Option(
        "--duration", help="How long each fault is on [default: 2m; --quick 15s]",
        show_default=False)] = None,
    rps: Annotated[float | None, typer.Option(
        "--rps", help="Measured traffic, orders/s [default: 20; --quick 10]",
        show_default=False)] = None,
    repeat: Annotated[int, typer.Option(
        "--repeat", help="Runs per cell; the cell shows their median.")] = 1,
    baseline: Annotated[str | None, typer.Option(
        "--baseline", help="Baseline per configuration [default: 30s; --quick 5s]",
        show_default=False)] = None,
    hold: Annotated[str | None, typer.Option(
        "--hold", help="How long success >= 95 % must hold to count as recovered "
                       "[default: 10s; --quick 5s]", show_default=False)] = None,
    recover_max: Annotated[str | None, typer.Option(
        "--recover-max", help="How long recovery is watched after the fault "
                              "[default: 150s; --quick 40s]", show_default=False)] = None,
    quick: Annotated[bool, typer.Option(
        "--quick", help="A short run: fewer cells, shorter phases (under 5 min).")] = False,
    report: Annotated[Path | None, typer.Option(
        "--report", help="Directory for the HTML report and JSON "
                         "[default: $CHAOSCTL_HOME/reports]")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output (shape above).")]
    = False,
) -> None:
    from chaosctl.config import load_settings
    from chaosctl.errors import InvalidInputError
    from chaosctl.experiment.configs import parse_configs
    from chaosctl.experiment.report import write
    from chaosctl.experiment.runner import Experiment, ExperimentOptions, quick_options
    from chaosctl.experiment.scenarios import parse_scenarios

    opts = quick_options() if quick else ExperimentOptions()
    if configs is not None:
        opts.configs = parse_configs(configs)
    if scenarios is not None:
        opts.scenarios = parse_scenarios(scenarios)
    for flag, text, attr, low, high in (
            ("--duration", duration, "duration_s", 1.0, 3600.0),
            ("--baseline", baseline, "baseline_s", 1.0, 3600.0),
            ("--hold", hold, "hold_s", 1.0, 600.0),
            ("--recover-max", recover_max, "recover_max_s", 1.0, 3600.0)):
        if text is None:
            continue
        from chaosctl.domain import parse_duration

        seconds = parse_duration(text, flag)
        if not low <= seconds <= high:
            raise InvalidInputError(f"{flag} {text} is out of range; valid: {low:g}s to "
                                    f"{high:g}s")
        setattr(opts, attr, seconds)
    if rps is not None:
        if not 0 < rps <= 200:
            raise InvalidInputError(f"--rps {rps:g} is out of range; valid: 0 < rps <= 200")
        opts.rps = rps
    if not 1 <= repeat <= 10:
        raise InvalidInputError(f"--repeat {repeat} is out of range; valid: 1..10")
    opts.repeat = repeat
    if opts.hold_s > opts.recover_max_s:
        raise InvalidInputError(f"--hold {opts.hold_s:g}s is longer than --recover-max "
                                f"{opts.recover_max_s:g}s; recovery could never be seen")
    settings = load_settings()
    directory = report or settings.home / "reports"
    progress = _Progress(opts)
    run = Experiment(settings, opts, listeners=[progress])
    try:
        with progress:
            result = run.run()
    except KeyboardInterrupt:  # in the preflight: nothing was changed yet
        result = run.result
        result.interrupted = True
        result.restored = not run.applied
    page = write(result, directory)
    if as_json:
        from chaosctl.results import dump

        typer.echo(json.dumps(dump(ExperimentResult, result.model_dump(mode="json")),
                              indent=2))
    else:
        _print_tables(result)
        typer.echo(f"report: {page}")
    if result.interrupted:
        progress.console.print("interrupted: " + ("the stack is back in its normal "
                                                  "configuration" if result.restored
                                                  else "RESTORE INCOMPLETE"), highlight=False)
        raise typer.Exit(130)
    ok = result.restored and all(c.status == "measured" for c in result.cells)
    raise typer.Exit(0 if ok else 1)


class _Progress:
    """Progress on stderr (stdout stays clean for --json): cell n of m, elapsed, ETA."""

    def __init__(self, opts: Any) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.opts = opts
        self.started = time.monotonic()
        self.cell_started = self.started
        self.done_s = 0.0  # planned seconds of the cells finished
        self.total_s = sum(opts.planned_s(s) for _, s in opts.cells())
        self.progress: Any = None
        self.task: Any = None
        self.label = "starting"
        self.planned = 1.0

    def __enter__(self) -> _Progress:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 TimeElapsedColumn(), TextColumn("ETA {task.fields[eta]}"),
                                 console=self.console, transient=False)
        self.progress.__enter__()
        self.task = self.progress.add_task(self.label, total=self.total_s, eta="–")
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def _eta(self, now: float) -> str:
        elapsed = now - self.started
        in_cell = min(now - self.cell_started, 0.95 * self.planned)
        done = self.done_s + in_cell
        if done <= 0:
            return "–"
        # Scale the plan by how this run has gone so far (restarts, slow recoveries).
        left = max(0.0, (self.total_s - done) * elapsed / done)
        return f"{int(left // 60)}:{int(left % 60):02d}"

    def __call__(self, event: Any) -> None:
        if self.progress is None or event.subject != "experiment":
            return
        now, data = time.monotonic(), event.data
        if event.kind == "cell_start":
            self.cell_started, self.planned = now, float(data["planned_s"])
            self.label = (f"cell {data['n']} of {data['m']}: {data['config']} "
                          f"{data['scenario']}")
        elif event.kind == "cell_end":
            self.done_s += self.planned
            self.planned = 0.0
            cell = data["cell"]
            m = cell.get("metrics") or {}
            self.console.print(
                f"  {cell['config']} {cell['scenario']}: "
                + (f"success {_num(m.get('success_pct'), '%')}, P95 "
                   f"{_num(m.get('p95_ms'), ' ms')}, RAF {_num(m.get('raf'), 'x')}"
                   if cell["status"] == "measured" else f"error: {cell['reason']}"),
                highlight=False)
        elif event.kind == "phase":
            self.console.print(f"[dim]{data['phase']}[/dim]")
        elif event.kind == "problem":
            self.console.print(f"[yellow]{data['detail']}[/yellow]", highlight=False)
        phase = data.get("phase", "") if event.kind == "tick" else ""
        in_cell = min(now - self.cell_started, 0.95 * self.planned) if self.planned else 0.0
        self.progress.update(self.task, completed=self.done_s + in_cell,
                             description=f"{self.label}{f' ({phase})' if phase else ''}",
                             eta=self._eta(now))


def _num(value: Any, unit: str) -> str:
    if value is None:
        return "–"
    return f"{value:.2f}{unit}" if unit == "x" else f"{value:.1f}{unit}"


def _print_tables(result: ExperimentResult) -> None:
    """The paper's layout: per scenario, one row per metric, one column per configuration;
    each cell ours / the paper's / the difference."""
    from rich.console import Console
    from rich.table import Table

    from chaosctl.experiment.paper import METRICS, TABLE_ROWS
    from chaosctl.experiment.report import cells_of, fmt, fmt_diff
    from chaosctl.experiment.scenarios import BASELINE

    console = Console()
    for scenario in [BASELINE, *(s.name for s in result.scenarios)]:
        cells = cells_of(result, scenario)
        if not cells:
            continue
        table = Table(title=scenario, title_justify="left", title_style="bold",
                      caption="ours / paper / diff",
                      caption_justify="left")
        table.add_column("metric")
        for c in cells:
            table.add_column(c.config, justify="right")
        for metric in TABLE_ROWS.get(scenario, ()):
            unit = METRICS[metric].unit
            row = [METRICS[metric].label]
            for c in cells:
                entry = next((t for t in c.table if t.metric == metric), None)
                if c.status != "measured" or entry is None:
                    row.append("error")
                    continue
                text = fmt(entry.ours, unit)
                if entry.paper is not None:
                    text += f"\n[dim]{fmt(entry.paper, unit)}[/dim]\n{fmt_diff(entry.diff, unit)}"
                row.append(text)
            table.add_row(*row)
        console.print(table)
    if result.interrupted:
        console.print(f"{result.completed} of {result.planned} cells measured before Ctrl-C")

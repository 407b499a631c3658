"""`chaosctl game-day`: rehearse incidents under load, time detection and recovery, report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from chaosctl.cli.shapes import help_block
from chaosctl.results.gameday import GameDayResult

GAMEDAY_HELP = """Rehearse runbook incidents under real traffic and score them.

For each scenario: preflight (stack healthy, no chaos), steady-state traffic (orders with
idempotency keys, a share of replays), run its steps (inject the fault with a TTL as a safety
net; crash-mid-order slows payments then SIGKILLs orders mid-flight; redis-restart restarts
Redis), detect it from Prometheus with the playbooks (time to detect), remediate (auto: run
the playbook that fired; manual: you fix it, chaosctl times you), verify the steady state is
back and holds (time to recover), replay idempotency keys where the scenario says so, and
ALWAYS roll back: faults cleared and traffic stopped whatever happens, Ctrl-C included. An
abort guard ends the run when the success rate stays under --abort-floor for --abort-grace,
or when recovery takes longer than --duration.

Every run is then checked in the databases: live charges per idempotency key <= 1, live
reservations per order <= 1, no order left pending after recovery's grace, no live charge on
an order that did not complete, no completed order without a live charge and reservation.
A failed integrity objective fails the run.

Exit 0 when every scenario passes, 1 when one fails or aborts, 2 for bad input, 130 when
interrupted (after the rollback).

"""



GAMEDAY_HELP += "\n" + help_block(
    "--json prints one object (stable shape); expected_playbook is null for a scenario that "
    "needs no playbook (redis-restart); scorecard is set with more than one scenario:",
    GameDayResult)


def register(app: typer.Typer) -> None:
    app.command("game-day", help=GAMEDAY_HELP)(game_day)


def _seconds(text: str, what: str) -> float:
    from chaosctl.domain import parse_duration

    return parse_duration(text, what)


def game_day(
    scenarios: Annotated[list[str] | None, typer.Argument(
        help="Scenarios to run: payment-errors, payment-slow, inventory-lock, "
             "inventory-errors, gateway-overload, notifications-down, service-crash, "
             "service-hang, retry-storm, crash-mid-order, redis-restart (see --list).",
        show_default=False)] = None,
    all_: Annotated[bool, typer.Option("--all", help="Run every scenario and a scorecard.")]
    = False,
    rps: Annotated[float, typer.Option("--rps", help="Steady traffic, orders per second.")]
    = 50.0,
    duration: Annotated[str, typer.Option(
        "--duration", help="Longest the fault phase may last (e.g. 60s) before aborting.")]
    = "60s",
    baseline: Annotated[str, typer.Option(
        "--baseline", help="Steady-state measurement before the fault.")] = "10s",
    hold: Annotated[str, typer.Option(
        "--hold", help="How long the steady state must hold to count as recovered.")] = "5s",
    mode: Annotated[str, typer.Option(
        "--mode", help="auto: run the playbook that fired; manual: humans fix it.")] = "auto",
    report: Annotated[Path | None, typer.Option(
        "--report", help="Directory for the HTML pages and JSON journals "
                         "[default: $CHAOSCTL_HOME/reports]")] = None,
    abort_floor: Annotated[float, typer.Option(
        "--abort-floor", help="Abort when the success rate stays below this.")] = 0.5,
    abort_grace: Annotated[str, typer.Option(
        "--abort-grace", help="...for longer than this.")] = "20s",
    list_: Annotated[bool, typer.Option("--list", help="List the scenarios and exit.")]
    = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output (shape above).")]
    = False,
) -> None:
    from chaosctl.config import load_settings
    from chaosctl.errors import ChaosctlError, InvalidInputError
    from chaosctl.gameday import scenarios as catalogue
    from chaosctl.gameday.report import write_run, write_scorecard
    from chaosctl.gameday.runner import GameDay, GameDayOptions

    if list_:
        for s in catalogue.SCENARIOS.values():
            typer.echo(f"{s.name:20} {s.description} -> expects "
                       f"{s.playbook or 'no playbook (the stack rides it out)'}")
        return
    names = list(catalogue.SCENARIOS) if all_ else list(scenarios or [])
    if not names:
        raise InvalidInputError("name at least one scenario or pass --all; valid: "
                                + ", ".join(catalogue.SCENARIOS))
    chosen = [catalogue.get(n) for n in names]
    if mode not in ("auto", "manual"):
        raise InvalidInputError(f"--mode {mode!r} is not valid; use auto or manual")
    if not 0 < rps <= 500:
        raise InvalidInputError(f"--rps {rps:g} is out of range; valid: 0 < rps <= 500")
    if not 0 <= abort_floor <= 1:
        raise InvalidInputError(f"--abort-floor {abort_floor:g} must be within 0..1")
    options = GameDayOptions(rps=rps, duration_s=_seconds(duration, "--duration"),
                             baseline_s=_seconds(baseline, "--baseline"),
                             hold_s=_seconds(hold, "--hold"), mode=mode,
                             abort_floor=abort_floor,
                             abort_grace_s=_seconds(abort_grace, "--abort-grace"))
    if options.duration_s <= 0 or options.baseline_s <= 0:
        raise InvalidInputError("--duration and --baseline must be above 0")
    settings = load_settings()
    directory = report or settings.home / "reports"
    results = []
    printer = _Progress(quiet=as_json)
    for scenario in chosen:
        run = GameDay(settings, scenario, options, listeners=[printer])
        try:
            result = run.run()
        except KeyboardInterrupt:
            write_run(run.result, directory)
            state = "rolled back" if run.result.rolled_back else "ROLLBACK INCOMPLETE"
            printer.line(f"interrupted: {state}; partial report {run.result.report_path}")
            raise typer.Exit(130) from None
        except ChaosctlError as exc:
            if len(chosen) == 1:
                raise  # one scenario: its error is the answer (preflight -> exit 1, etc.)
            # --all: keep the scenarios already run; this one is recorded as aborted.
            result = run.result
            result.outcome, result.reason = "aborted", str(exc)
        write_run(result, directory)
        results.append(result)
        printer.summary(result)
    card = write_scorecard(results, directory) if len(results) > 1 else None
    passed = sum(r.outcome == "pass" for r in results)
    if as_json:
        from chaosctl.results import dump

        typer.echo(json.dumps(dump(GameDayResult, {
            "results": [r.to_json() for r in results],
            "scorecard": str(card) if card else None,
            "passed": passed, "total": len(results)}), indent=2))
    elif card:
        printer.line(f"scorecard: {card}  ({passed}/{len(results)} passed)")
    raise typer.Exit(0 if passed == len(results) else 1)


class _Progress:
    """Live progress on stderr (stdout stays clean for --json)."""

    def __init__(self, quiet: bool) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.quiet = quiet

    def line(self, text: str) -> None:
        self.console.print(text, highlight=False)

    def __call__(self, event: Any) -> None:
        if event.source != "gameday":
            return  # the game day's engine reports its steps too; the markers say enough
        kind, data = event.kind, event.data
        t = f"[dim]{data.get('t', 0):7.1f}s[/dim]"
        name = data.get("scenario", "")
        if kind == "phase":
            self.console.print(f"{t} [bold]{name}[/bold] {data['phase']}")
        elif kind == "marker":
            self.console.print(f"{t} [bold]{name}[/bold] [cyan]{data['kind']}[/cyan] "
                               f"{data['label']}", highlight=False)
        elif kind == "baseline":
            rate = data.get("success_rate")
            p95 = data.get("p95_ms")
            self.console.print(
                f"{t} [bold]{name}[/bold] baseline: success "
                f"{'–' if rate is None else f'{rate:.1%}'}, p95 "
                f"{'–' if p95 is None else f'{p95:.0f} ms'}")
        elif kind == "remediated":
            self.console.print(f"{t} [bold]{name}[/bold] playbook {data['playbook']}: "
                               f"{data['status']}")
        elif kind == "replayed":
            self.console.print(
                f"{t} [bold]{name}[/bold] replayed {data['keys']} {data['mode']} keys: "
                f"{data['answered']} answered, {data['new_orders']} new orders, "
                f"{data['unresolved']} unresolved", highlight=False)
        elif kind == "waiting":
            self.console.print(f"{t} [bold]{name}[/bold] [yellow]{data['detail']}[/yellow]")

    def summary(self, r: Any) -> None:
        color = {"pass": "green", "fail": "red", "aborted": "yellow"}[r.outcome]
        mttd = "–" if r.mttd_s is None else f"{r.mttd_s:.1f} s"
        mttr = "–" if r.mttr_s is None else f"{r.mttr_s:.1f} s"
        self.console.print(
            f"[bold]{r.scenario}[/bold]: [{color}]{r.outcome.upper()}[/{color}]  "
            f"detect {mttd}  recover {mttr}  playbook {r.fired_playbook or '–'}  "
            f"duplicates {r.duplicates}  lost events {r.lost_events}"
            + (f"\n  integrity: max {r.integrity.max_charges_per_key} live charge(s) per key, "
               f"max {r.integrity.max_reservations_per_order} reservation(s) per order, "
               f"{r.integrity.pending} pending, {r.integrity.charged_not_completed} charged "
               "but not completed" if r.integrity else "\n  integrity: not checked")
            + (f"\n  {r.reason}" if r.reason else "")
            + f"\n  report: {r.report_path}", highlight=False)

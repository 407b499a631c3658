"""`chaosctl inject FAULT ...`: parse options, call the injector, render, pick the exit code."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from chaosctl.cli.shapes import help_block
from chaosctl.results.chaos import InjectResult as InjectResultShape

if TYPE_CHECKING:
    from chaosctl.chaos.injector import InjectResult
    from chaosctl.config import Settings

INJECT_JSON_HELP = help_block(
    "--json prints one object (stable shape); request carries the fault's own parameters "
    "(rps, retries, ...) after the common ones:", InjectResultShape)


class FaultGroup(TyperGroup):
    """An unknown fault name is exit 2 with the list of valid faults (click only says
    "No such command")."""

    def resolve_command(self, ctx: Any, args: list[str]):  # noqa: ANN201
        from chaosctl.domain import FAULTS

        if args and args[0] not in self.commands and not args[0].startswith("-"):
            # ctx.fail raises the usage error of whichever click typer runs on (exit 2).
            ctx.fail(f"unknown fault {args[0]!r}; valid faults: {', '.join(FAULTS)}")
        return super().resolve_command(ctx, args)


inject_app = typer.Typer(
    name="inject",
    cls=FaultGroup,
    help=(
        "Break the stack on purpose, one runbook fault at a time. Every fault ends by itself "
        "(--ttl, default 10m; 0 refused), can be previewed with --dry-run (prints exactly what "
        "would be set, changes nothing) and is halted by `chaosctl chaos clear`. Bad values "
        "exit 2 naming the valid range and set nothing; a service that cannot be reached "
        "exits 1 and sets nothing; one that takes the request but never answers (paused) "
        "exits 1 and an undo guard deletes the key if the late request sets it. Each call "
        "appends one line to the audit log "
        "(`chaosctl chaos log`).\n\n" + INJECT_JSON_HELP
    ),
    no_args_is_help=True,
)

Ttl = Annotated[str, typer.Option(
    "--ttl", help="How long until the fault ends by itself: 30s, 10m, 1h (0 refused).")]
DryRun = Annotated[bool, typer.Option(
    "--dry-run", help="Print exactly what would be done; change nothing.")]
Json = Annotated[bool, typer.Option("--json", help="JSON output (shape in `inject --help`).")]
Detach = Annotated[bool, typer.Option(
    "--detach", help="Return at once; the burst keeps running in the background.")]


def _settings() -> Settings:
    from chaosctl.config import load_settings

    return load_settings()


def _run(fault: str, dry_run: bool, as_json: bool, **options: Any) -> InjectResult:
    from chaosctl.chaos.injector import inject

    settings = _settings()
    result = inject(settings, fault, dry_run=dry_run, **options)
    if as_json:
        from chaosctl.results import dump

        typer.echo(json.dumps(dump(InjectResultShape, result.to_json()), indent=2, default=str))
    else:
        _render(result)
    return result


def _render(result: InjectResult) -> None:
    prefix = "would " if result.dry_run else ""
    for step in result.actions:
        typer.echo(f"{prefix}{step['action']}: {step['detail']}")
    if result.dry_run:
        typer.echo("dry run: nothing was changed")
        return
    for key, state in result.keys.items():
        typer.echo(f"set {key} = {state['value']} (TTL {state['ttl_s']}s)")
    if result.worker is not None:
        typer.echo(f"worker {result.worker.id} running as pid {result.worker.pid}")
    typer.echo(f"{result.request.fault} injected; halt with `chaosctl chaos clear "
               f"{result.request.fault}` or `chaosctl chaos clear --all`")


def _follow(result: InjectResult, as_json: bool) -> None:
    """Show a burst's live stats until it ends; Ctrl-C stops the burst (exit 130)."""
    from chaosctl.runtime.workers import WorkerStore

    if result.dry_run or result.worker is None:
        return
    store = WorkerStore(_settings().home)
    worker = result.worker
    try:
        while worker.is_alive():
            time.sleep(1.0)
            current = store.get(worker.id)
            if current is not None and current.stats and not as_json:
                s = current.stats
                typer.echo(f"  {s['elapsed_s']:>6}s sent {s['sent']:>7} ok {s['ok']:>7} "
                           f"codes {s['status_counts']} p95 {s['p95_ms']} ms", err=True)
    except KeyboardInterrupt:
        store.stop(worker)
        typer.echo(f"stopped {worker.kind} worker {worker.id}", err=True)
        raise typer.Exit(130) from None
    if not as_json:
        typer.echo(f"{worker.kind} finished (see `chaosctl chaos log`)")


Rate = Annotated[float | None, typer.Option(
    "--rate", help="Fraction of calls that fail, 0 < rate <= 1 (e.g. 0.2).")]
Ms = Annotated[float | None, typer.Option("--ms", help="Milliseconds, 1..60000.")]
_KEY_NOTE = " Lands in the runbook's Redis key with a TTL, through the service's /chaos/config."


@inject_app.command("payment-errors",
                    help="Payments answers 503 for --rate of charges." + _KEY_NOTE)
def payment_errors(rate: Rate = None, ttl: Ttl = "10m", dry_run: DryRun = False,
                   as_json: Json = False) -> None:
    _run("payment-errors", dry_run, as_json, rate=rate, ttl=ttl)


@inject_app.command("payment-latency", help="Payments waits --ms before each charge." + _KEY_NOTE)
def payment_latency(ms: Ms = None, ttl: Ttl = "10m", dry_run: DryRun = False,
                    as_json: Json = False) -> None:
    _run("payment-latency", dry_run, as_json, ms=ms, ttl=ttl)


@inject_app.command("inventory-lock", help=(
    "Inventory holds its stock lock --ms per reservation, so concurrent reservations queue."
    + _KEY_NOTE))
def inventory_lock(ms: Ms = None, ttl: Ttl = "10m", dry_run: DryRun = False,
                   as_json: Json = False) -> None:
    _run("inventory-lock", dry_run, as_json, ms=ms, ttl=ttl)


@inject_app.command("inventory-errors", help=(
    "Inventory answers 503 for --rate of reservations." + _KEY_NOTE))
def inventory_errors(rate: Rate = None, ttl: Ttl = "10m", dry_run: DryRun = False,
                     as_json: Json = False) -> None:
    _run("inventory-errors", dry_run, as_json, rate=rate, ttl=ttl)


For = Annotated[str | None, typer.Option(
    "--for", help="How long: 30s, 2m, 500ms; 0 = until cleared (still bounded by --ttl).")]


@inject_app.command("service-down", help=(
    "SIGKILL every replica of SERVICE (gateway, orders, payments, inventory, notifications); "
    "a detached reverter starts it again after --for (default 30s)."))
def service_down(service: Annotated[str, typer.Argument(help="The service to kill.")],
                 for_: For = None, ttl: Ttl = "10m", dry_run: DryRun = False,
                 as_json: Json = False) -> None:
    _run("service-down", dry_run, as_json, service=service, for_=for_, ttl=ttl)


@inject_app.command("service-hang", help=(
    "SIGSTOP every replica of SERVICE so it accepts connections but never answers; SIGCONT "
    "after --for (default 20s)."))
def service_hang(service: Annotated[str, typer.Argument(help="The service to freeze.")],
                 for_: For = None, ttl: Ttl = "10m", dry_run: DryRun = False,
                 as_json: Json = False) -> None:
    _run("service-hang", dry_run, as_json, service=service, for_=for_, ttl=ttl)


@inject_app.command("notifications-down", help=(
    "service-down for notifications (the runbook's outbox incident); back after --for "
    "(default 30s)."))
def notifications_down(for_: For = None, ttl: Ttl = "10m", dry_run: DryRun = False,
                       as_json: Json = False) -> None:
    _run("notifications-down", dry_run, as_json, for_=for_, ttl=ttl)


@inject_app.command("overload", help=(
    "An open-loop burst of --rps orders per second against the gateway for --for (loopback "
    "only, at most rps x duration requests). Runs in a detached worker recorded in the state "
    "dir; this command follows it until it ends (Ctrl-C stops it) unless --detach."))
def overload(
    rps: Annotated[float, typer.Option("--rps", help="Orders per second, 1..2000.")] = 200,
    for_: Annotated[str, typer.Option("--for", help="Duration, e.g. 60s (max 1h).")] = "60s",
    ttl: Ttl = "10m", detach: Detach = False, dry_run: DryRun = False, as_json: Json = False,
) -> None:
    result = _run("overload", dry_run, as_json, rps=rps, for_=for_, ttl=ttl)
    if not detach:
        _follow(result, as_json)


@inject_app.command("retry-storm", help=(
    "Payment errors (--rate, default 0.5) plus clients that re-POST every failed order at "
    "once, up to --retries times, at --rps new orders per second for --for: the study's "
    "retry storm, to show what retry budgets and breakers prevent. Follows the storm until "
    "it ends unless --detach; the payment error key keeps its --ttl."))
def retry_storm(
    rate: Annotated[float, typer.Option("--rate", help="Payment error rate, 0..1.")] = 0.5,
    rps: Annotated[float, typer.Option("--rps", help="New orders per second.")] = 20,
    retries: Annotated[int, typer.Option("--retries", help="Re-POSTs per order, 1..20.")] = 5,
    for_: Annotated[str, typer.Option("--for", help="Duration, e.g. 60s (max 1h).")] = "60s",
    ttl: Ttl = "10m", detach: Detach = False, dry_run: DryRun = False, as_json: Json = False,
) -> None:
    result = _run("retry-storm", dry_run, as_json, rate=rate, rps=rps, retries=retries,
                  for_=for_, ttl=ttl)
    if not detach:
        _follow(result, as_json)


def register(app: typer.Typer) -> None:
    app.add_typer(inject_app, name="inject")

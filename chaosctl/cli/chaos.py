"""`chaosctl chaos status|clear|log`: what is broken on purpose, the halt, the audit trail."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from chaosctl.cli.shapes import help_block
from chaosctl.results import dump
from chaosctl.results.chaos import AuditEntry, ChaosStatusResult, ClearResult

if TYPE_CHECKING:
    from chaosctl.config import Settings

STATUS_JSON_HELP = help_block(
    "--json prints one object (stable shape); source is the inject the fault came from, "
    "as in `chaos log`:", ChaosStatusResult)
CLEAR_JSON_HELP = help_block(
    "--json prints one object (stable shape); remaining: faults as in `chaos status --json`:",
    ClearResult)
LOG_JSON_HELP = help_block("--json prints a list of entries (stable shape), oldest first:",
                           list[AuditEntry])

chaos_app = typer.Typer(
    name="chaos",
    help="What chaos is active (status), the halt (clear) and the audit trail (log).",
    no_args_is_help=True,
)
Json = Annotated[bool, typer.Option("--json", help="JSON output (shape in this help).")]


def _settings() -> Settings:
    from chaosctl.config import load_settings

    return load_settings()


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


@chaos_app.command(help=(
    "Every active fault: chaos keys in Redis (value, time left), killed and paused services, "
    "running bursts, storms and reverters, with where each came from (the audit log). Exit 0 "
    "when nothing is active, 1 when something is (or Redis cannot be read).\n\n"
    + STATUS_JSON_HELP))
def status(as_json: Json = False) -> None:
    from chaosctl.chaos.status import collect

    result = collect(_settings())
    if as_json:
        _print_json(dump(ChaosStatusResult, result.to_json()))
    else:
        _render_status(result)
    raise typer.Exit(0 if result.clean else 1)


def _render_status(result: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if result.faults:
        table = Table(title="active chaos")
        for col in ("fault", "kind", "target", "value", "time left", "detail", "from"):
            table.add_column(col)
        for f in result.faults:
            left = "-" if f.ttl_s is None else f"{f.ttl_s:g}s"
            src = f"{f.source['user']} {f.source['time']}" if f.source else "unknown"
            table.add_row(f.fault, f.kind, f.target, str(f.value), left, f.detail, src)
        console.print(table)
    for problem in result.problems:
        console.print(f"[red]problem:[/] {problem}")
    console.print("[green]no chaos active[/]" if result.clean
                  else "[bold red]chaos active[/]: halt with `chaosctl chaos clear --all`")


@chaos_app.command(help=(
    "The halt. Clears TARGET (a fault name such as payment-errors or overload, or a service "
    "name) or everything with --all: stops bursts, storms and reverters, deletes chaos keys "
    "(through DELETE /chaos/config, else directly in Redis), resumes paused services, starts "
    "killed ones; then verifies that nothing is left. Idempotent. Exit 0 when clean, 1 when "
    "something is left or Redis is unreachable, 2 for a bad target.\n\n" + CLEAR_JSON_HELP))
def clear(
    target: Annotated[str | None, typer.Argument(
        help="A fault (payment-errors, ..., retry-storm) or a service name.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Clear every fault.")] = False,
    as_json: Json = False,
) -> None:
    from chaosctl.chaos.halt import clear as do_clear
    from chaosctl.errors import InvalidInputError

    if all_ == (target is not None):
        raise InvalidInputError("give either a TARGET or --all",
                                hint="e.g. `chaosctl chaos clear --all`")
    result = do_clear(_settings(), None if all_ else target)
    if as_json:
        _print_json(dump(ClearResult, result.to_json()))
    else:
        for a in result.actions:
            typer.echo(f"{a['action']:<12} {a['target']:<20} {a['how']}")
        for p in result.problems:
            typer.echo(f"problem: {p}", err=True)
        for r in result.remaining:
            typer.echo(f"still active: {r.fault} {r.target} ({r.detail})", err=True)
        verdict = "clean" if result.ok else "NOT clean"
        typer.echo(f"{result.target}: {verdict} after {result.elapsed_s:.2f}s"
                   + ("" if result.actions or not result.ok else " (nothing was active)"))
    raise typer.Exit(0 if result.ok else 1)


@chaos_app.command(help=(
    "The audit trail: one line per inject, clear and automatic revert (time, user, command, "
    "fault, value, TTL, outcome), from $CHAOSCTL_HOME/audit.log.\n\n" + LOG_JSON_HELP))
def log(
    tail: Annotated[int | None, typer.Option("--tail", "-n", min=1,
                                             help="Only the last N entries.")] = None,
    as_json: Json = False,
) -> None:
    from chaosctl.chaos.audit import read

    entries = read(_settings().home, tail)
    if as_json:
        _print_json(_audit_entries(entries))
        return
    for e in entries:
        value = "" if e.get("value") is None else f" value={json.dumps(e['value'])}"
        ttl = "" if e.get("ttl_s") is None else f" ttl={e['ttl_s']}s"
        what = e.get("fault") or e.get("target") or ""
        typer.echo(f"{e.get('time')} {e.get('user')} {e.get('action')} {what}{value}{ttl} "
                   f"-> {e.get('outcome')}  [{e.get('command')}]"
                   + (f" {e['detail']}" if e.get("detail") else ""))
    if not entries:
        typer.echo("audit log is empty", err=True)


def _audit_entries(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries in their documented shape; a line that is not one (edited by hand, or
    from another version) is left out with a note, as unreadable lines already are."""
    from pydantic import ValidationError

    shaped = []
    for entry in entries:
        try:
            shaped.append(dump(AuditEntry, entry))
        except ValidationError:
            typer.echo(f"chaos log: skipped an entry that is not an audit entry: "
                       f"{json.dumps(entry, default=str)[:120]}", err=True)
    return shaped


def register(app: typer.Typer) -> None:
    app.add_typer(chaos_app, name="chaos")

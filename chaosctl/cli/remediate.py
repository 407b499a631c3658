"""`chaosctl remediate`: run a playbook's remediation and verify, under the guardrails."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from chaosctl.cli.playbook_render import EXTERNAL, SHAPE_NAMES
from chaosctl.cli.shapes import help_block
from chaosctl.results.playbook import RemediateResult

HELP = (
    "Run the remediate phase of a playbook (or, with --auto, of every incident `diagnose` "
    "finds firing), then its verify phase, printing each step live with its duration.\n\n"
    "Guardrails: the playbooks are validated as a whole first; nothing runs for an incident "
    "that is not firing when the run starts; a lock ($CHAOSCTL_HOME/run/remediation.lock) "
    "keeps two remediations from running at once (the second exits 1 naming the holder); "
    "at most CHAOSCTL_REMEDIATION_CAP (10) mutating actions per playbook per "
    "CHAOSCTL_REMEDIATION_WINDOW_S (600 s). Asks for confirmation unless --yes; without a "
    "terminal and without --yes it refuses (exit 2). --dry-run shows the plan and runs "
    "nothing. Every run writes a JSON journal to $CHAOSCTL_HOME/journal/.\n\n"
    "Exit code: 0 recovered (or nothing was firing, or --dry-run); 1 not recovered (what "
    "still fails is listed), lock held, cap reached or not confirmed; 2 bad usage, unknown "
    "or invalid playbook, no --yes without a terminal, Prometheus unreachable.\n\n"
    + help_block("--json prints one object:", RemediateResult, SHAPE_NAMES, EXTERNAL)
)


def remediate(
    playbook: Annotated[str | None, typer.Argument(
        help="The playbook to run (see `chaosctl playbooks list`).")] = None,
    auto: Annotated[bool, typer.Option(
        "--auto", help="Remediate whatever `diagnose` finds firing.")] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Show the plan; run nothing.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output (shape above).")] = False,
) -> None:
    from chaosctl.cli.playbook_render import StepPrinter, print_result
    from chaosctl.config import load_settings
    from chaosctl.errors import InvalidInputError
    from chaosctl.playbook import api

    if bool(playbook) == auto:
        raise InvalidInputError("name one playbook or pass --auto (not both, not neither)",
                                hint="e.g. `chaosctl remediate payment-degradation --yes`")
    settings = load_settings()
    listeners = [] if as_json else [StepPrinter()]
    engine = api.build_engine(settings, listeners)
    if playbook:
        engine.catalog.get(playbook)  # unknown name -> exit 2 before anything else
        names = [playbook]
    else:
        names = api.firing_now(engine)
        if not names:
            if as_json:
                print_result(RemediateResult, {"runs": [], "recovered": True})
            else:
                typer.echo("nothing is firing: nothing to remediate")
            raise typer.Exit(0)
    if not dry_run and not yes:
        if not sys.stdin.isatty():
            raise InvalidInputError(
                f"refusing to remediate {', '.join(names)} without confirmation: no terminal "
                "to ask on; pass --yes")
        if not typer.confirm(f"Run remediation for {', '.join(names)}?", default=False):
            typer.echo("not confirmed; nothing was run", err=True)
            raise typer.Exit(1)
    results = api.remediate(engine, names, dry_run=dry_run)
    recovered = all(r.recovered for r in results)
    if as_json:
        print_result(RemediateResult,
                     {"runs": [r.to_json() for r in results], "recovered": recovered})
    else:
        for r in results:
            if r.journal:
                typer.echo(f"journal: {r.journal}")
        verdict = "recovered" if recovered else "NOT recovered"
        if not dry_run:
            typer.echo(f"{', '.join(names)}: {verdict}")
    raise typer.Exit(0 if recovered else 1)


def register(app: typer.Typer) -> None:
    app.command(name="remediate", help=HELP)(remediate)

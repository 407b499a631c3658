"""`chaosctl playbooks list|show|validate|rules`: inspect, check and export the playbooks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from chaosctl.cli.shapes import help_block
from chaosctl.results.playbook import PlaybookEntry, ValidateResult

playbooks_app = typer.Typer(
    name="playbooks",
    help=(
        "The runbook as code: one YAML playbook per incident in playbooks/ (detect, diagnose, "
        "remediate, verify). List, show and validate them, and generate Prometheus alerting "
        "rules from their detect phases."
    ),
    no_args_is_help=True,
)
Json = Annotated[bool, typer.Option("--json", help="JSON output (shape in this help).")]


@playbooks_app.command("list", help=(
    "Every shipped playbook: name, severity, title and the runbook section it encodes. "
    "Exit 2 when a playbook file is invalid.\n\n"
    + help_block("--json prints a list:", list[PlaybookEntry])))
def list_playbooks(as_json: Json = False) -> None:
    from chaosctl.cli.playbook_render import print_result
    from chaosctl.playbook.library import load_catalog

    catalog = load_catalog(check_promql=False)
    rows = [{"name": n, "severity": lp.playbook.severity, "title": lp.playbook.title,
             "runbook": lp.playbook.runbook, "file": lp.file}
            for n, lp in sorted(catalog.playbooks.items())]
    if as_json:
        print_result(PlaybookEntry, rows)
        return
    for row in rows:
        typer.echo(f"{row['name']:<28} {row['severity']:<9} {row['title']}  "
                   f"[runbook: {row['runbook']}]")


@playbooks_app.command("show", help=(
    "Print one playbook: its file, then the remediation plan. Exit 2 for an unknown name.\n\n"
    "--json prints the validated playbook as one object (the YAML fields, defaults filled in, "
    "durations in seconds) plus \"file\": str."))
def show(name: Annotated[str, typer.Argument(help="Playbook name.")],
         as_json: Json = False) -> None:
    from chaosctl.cli.playbook_render import print_json
    from chaosctl.playbook.library import load_catalog

    catalog = load_catalog(check_promql=False)
    pb = catalog.get(name)
    file = catalog.playbooks[name].file
    if as_json:
        print_json({**pb.model_dump(mode="json", by_alias=True), "file": file})
        return
    typer.echo(f"# {file}")
    typer.echo(Path(file).read_text().rstrip())


@playbooks_app.command("validate", help=(
    "Validate playbook files as a whole (default: all shipped ones): structure and types, "
    "known actions and their params, read-only diagnose steps, inhibited_by names, unique "
    "names matching file names, and every PromQL expression (promtool when installed, else "
    "the stack's Prometheus). Every problem is listed with file:line, field path and fix.\n\n"
    "Exit code: 0 valid; 1 problems found; 2 no file given/found.\n\n"
    + help_block("--json prints one object:", ValidateResult)))
def validate(
    files: Annotated[list[Path] | None, typer.Argument(help="Playbook YAML files.")] = None,
    as_json: Json = False,
) -> None:
    from chaosctl.cli.playbook_render import print_result
    from chaosctl.config import load_settings
    from chaosctl.playbook.library import load_catalog, playbook_files
    from chaosctl.playbook.loader import PlaybookValidationError

    paths = list(files) if files else playbook_files()
    problems = []
    try:
        load_catalog(paths, prometheus_url=load_settings().prometheus_url)
    except PlaybookValidationError as exc:
        problems = exc.problems
    if as_json:
        print_result(ValidateResult, {"valid": not problems, "files": [str(p) for p in paths],
                                      "problems": [p.to_json() for p in problems]})
    elif problems:
        for problem in problems:
            typer.echo(str(problem))
        typer.echo(f"{len(problems)} problem(s) in {len(paths)} file(s)", err=True)
    else:
        typer.echo(f"{len(paths)} playbook(s) valid")
    raise typer.Exit(1 if problems else 0)


@playbooks_app.command("rules", help=(
    "Generate Prometheus alerting rules from the playbooks' detect phases (Prometheus "
    "symptoms only; chaos-key and health evidence is left to `chaosctl diagnose`). Writes the "
    "shipped stack/prometheus/rules/alerts.yml (loaded by the stack's Prometheus) unless "
    "--output is given; `--output -` prints to stdout. --check writes nothing and exits 1 "
    "when the file differs from what would be generated (0 when up to date)."))
def rules(
    output: Annotated[str | None, typer.Option(
        "--output", "-o", help="Where to write (default: the shipped alerts.yml; - = stdout).",
    )] = None,
    check: Annotated[bool, typer.Option("--check", help="Only compare; exit 1 if stale.")] = False,
) -> None:
    from chaosctl.playbook.library import load_catalog
    from chaosctl.playbook.rules import render_rules, shipped_rules_path

    text = render_rules(load_catalog(check_promql=False).all())
    if output == "-":
        typer.echo(text, nl=False)
        return
    path = Path(output) if output else shipped_rules_path()
    if check:
        current = path.read_text() if path.is_file() else ""
        if current != text:
            typer.echo(f"{path} is out of date; run `chaosctl playbooks rules`", err=True)
            raise typer.Exit(1)
        typer.echo(f"{path} is up to date")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    typer.echo(f"wrote {path}")


def register(app: typer.Typer) -> None:
    app.add_typer(playbooks_app)

"""`chaosctl diagnose`: evaluate the playbooks' detect phases, show what fires and why."""

from __future__ import annotations

from typing import Annotated

import typer

from chaosctl.cli.playbook_render import EXTERNAL, SHAPE_NAMES
from chaosctl.cli.shapes import help_block
from chaosctl.results.playbook import DiagnoseResult

HELP = (
    "Evaluate every playbook's detect phase (or only the named ones) against Prometheus and "
    "the stack: which incidents fire, each symptom's current value against its threshold, "
    "and, for firing incidents, the evidence of their diagnose steps. An incident whose "
    "`inhibited_by` playbook fires is shown as inhibited (a consequence), not as firing.\n\n"
    "Exit code: 0 nothing fires; 1 an incident fires; 2 Prometheus cannot be reached (it then "
    "still reports what it can check directly: service health, breakers, chaos keys), an "
    "unknown playbook or an invalid playbook file.\n\n"
    + help_block("--json prints one object; direct is null unless Prometheus is unreachable, "
                 "then HEALTH, the `chaosctl health --json` object:",
                 DiagnoseResult, SHAPE_NAMES, EXTERNAL)
)


def diagnose(
    playbooks: Annotated[list[str] | None, typer.Argument(
        help="Playbook names (default: all). See `chaosctl playbooks list`.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output (shape above).")] = False,
) -> None:
    from chaosctl.cli.playbook_render import print_result
    from chaosctl.config import load_settings
    from chaosctl.playbook.api import diagnose as run_diagnose

    report = run_diagnose(load_settings(), playbooks or None)
    if as_json:
        print_result(DiagnoseResult, report.to_json())
    else:
        _render(report)
    if not report.prometheus_reachable:
        raise typer.Exit(2)
    raise typer.Exit(1 if report.firing else 0)


def _render(report) -> None:  # noqa: ANN001
    import json

    from rich.console import Console

    from chaosctl.cli.playbook_render import condition_lines

    c = Console(highlight=False, soft_wrap=True)
    if not report.prometheus_reachable:
        c.print(f"[bold red]Prometheus unreachable[/]: {report.prometheus_error}")
        c.print("No incident can be detected without it. What can be checked directly:")
        direct = report.direct
        for name, svc in direct.services.items():
            c.print(f"  service {name:<14} {svc.status}  {svc.detail}")
        for name, b in direct.breakers.states.items():
            c.print(f"  breaker {name:<14} {b.state}")
        if direct.breakers.status != "ok":
            c.print(f"  breakers: {direct.breakers.status} {direct.breakers.detail}")
        c.print(f"  redis {direct.redis.status}")
        if direct.chaos:
            for key in direct.chaos:
                c.print(f"  [yellow]chaos set[/]: {key.key}={key.value} (ttl {key.ttl_s}s)")
        else:
            c.print("  chaos keys: none set")
        return
    for d in report.detections:
        if d.firing:
            head = f"[bold red]FIRING[/]    {d.playbook} ({d.severity}): {d.title}"
        elif d.inhibited_by:
            head = f"[yellow]inhibited[/] {d.playbook}: fires, but as a consequence of " \
                   f"{', '.join(d.inhibited_by)}"
        else:
            head = f"[green]ok[/]        {d.playbook}"
        c.print(head)
        if d.firing or d.inhibited_by:
            for line in condition_lines(d.result, 4):
                c.print(line)
        for step in d.evidence:
            status = step.status if step.status != "ok" else "evidence"
            c.print(f"    [cyan]{status}[/] {step.name}:")
            shown = step.error or json.dumps(step.output, default=str)
            c.print(f"      {shown[:600]}")
    firing = report.firing
    c.print(f"\n{len(firing)} incident(s) firing" + (f": {', '.join(firing)}" if firing else ""))
    if firing:
        c.print("remediate with: " + "; ".join(f"chaosctl remediate {n}" for n in firing))


def register(app: typer.Typer) -> None:
    app.command(name="diagnose", help=HELP)(diagnose)

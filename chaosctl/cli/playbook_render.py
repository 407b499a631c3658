"""Rendering shared by diagnose / remediate / watch: condition trees, step lines, JSON shapes."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

from chaosctl.results import playbook as results
from chaosctl.results.health import HealthReport

# Named shapes for the help texts of diagnose / remediate / watch (see chaosctl.cli.shapes).
SHAPE_NAMES: dict[Any, str] = {
    results.Condition: "COND", results.Step: "STEP", results.Run: "RUN",
    results.PlanAction: "PLAN_STEP", results.PlanBranch: "PLAN_IF", HealthReport: "HEALTH",
}
# Documented with `chaosctl health --help`, not repeated here.
EXTERNAL = (HealthReport,)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def print_result(model: Any, data: Any) -> None:
    """`data` checked against its documented shape, then printed (see chaosctl.results)."""
    from chaosctl.results import dump

    print_json(dump(model, data))


def fmt_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def mark(holds: bool | None) -> str:
    return {True: "[red]FIRING[/]", False: "[green]ok[/]", None: "[yellow]unknown[/]"}[holds]


def condition_lines(result: Any, indent: int = 2, symptom: bool = True) -> list[str]:
    """One line per node: label, current value vs threshold, and whether it holds."""
    pad = " " * indent
    if result.children:
        lines = [f"{pad}{result.label}: {'yes' if result.holds else 'no'}"]
        for child in result.children:
            lines += condition_lines(child, indent + 2, symptom)
        return lines
    state = ("[red]yes[/]" if symptom else "[green]yes[/]") if result.holds else (
        "[yellow]?[/]" if result.holds is None else ("no" if symptom else "[red]no[/]"))
    want = f" (threshold {result.threshold})" if result.threshold else ""
    detail = f"  {result.detail}" if result.detail else ""
    from rich.markup import escape

    return [f"{pad}\\[{state}] {escape(result.label)}: {fmt_value(result.value)}{want}{detail}"]


class StepPrinter:
    """An engine listener printing one line per step as it ends (live, with its duration)."""

    def __init__(self, stream: Any = None) -> None:
        from rich.console import Console

        self.console = Console(file=stream or sys.stdout, highlight=False, soft_wrap=True)

    def __call__(self, event: Any) -> None:
        c = self.console
        d = event.data
        if event.kind == "run_start":
            c.print(f"[bold]{event.subject}[/]: {d.get('title')}"
                    + (" [dim](dry run)[/]" if d.get("dry_run") else ""))
        elif event.kind == "step_start" and d.get("action") != "if" and c.is_terminal:
            c.print(f"  .. {d['phase']:<9} {d['name']}", end="\r")
        elif event.kind == "step_end":
            s = d["step"]
            colour = {"ok": "green", "failed": "red", "dry_run": "cyan"}[s["status"]]
            extra = ""
            if s["action"] == "if":
                extra = f" -> {s['output']['branch']}" if s.get("output") else ""
            elif s["error"]:
                extra = f": {s['error']}"
            c.print(f"  [{colour}]{s['status']:>7}[/] {s['phase']:<9} {s['name']}{extra} "
                    f"[dim]({s['duration_s']:.2f}s)[/]")
        elif event.kind == "verify_start":
            c.print(f"  verify: conditions must hold {d['hold_for']:g}s "
                    f"(timeout {d['timeout']:g}s)")
        elif event.kind == "verify_end":
            if d["passed"]:
                c.print(f"  [green]verified[/] after {d['duration_s']:.1f}s")
            else:
                c.print(f"  [red]not recovered[/] after {d['duration_s']:.1f}s; still failing:")
                for line in d.get("failing", []):
                    c.print(f"    - {line}")
        elif event.kind == "run_end":
            r = d["result"]
            if r["status"] == "not_firing":
                c.print("  not firing now: nothing to do (no step was run)")
            elif r["status"] == "dry_run":
                state = "firing" if r.get("firing") else "not firing now"
                c.print(f"  dry run ({state}): plan below, nothing was run")
                for line in plan_lines(r["plan"], 4):
                    c.print(line)
            elif r.get("error") and not r["steps"]:
                c.print(f"  [red]{r['error']}[/]")


def plan_lines(plan: list[dict[str, Any]], indent: int = 2) -> list[str]:
    from rich.markup import escape

    pad = " " * indent
    lines: list[str] = []
    for i, step in enumerate(plan, 1):
        if "if" in step:
            lines.append(f"{pad}{i}. if {escape(json.dumps(step['if']))}:")
            lines += plan_lines(step["then"], indent + 4)
            if step["else"]:
                lines.append(f"{pad}   else:")
                lines += plan_lines(step["else"], indent + 4)
        else:
            star = "" if step["mutating"] else " [dim](read-only)[/]"
            params = escape(json.dumps(step["params"])) if step["params"] else ""
            lines.append(f"{pad}{i}. {escape(step['name'])}: {step['action']} {params}{star}")
    return lines

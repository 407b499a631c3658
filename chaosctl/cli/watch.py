"""`chaosctl watch`: detect and remediate in a loop, one line per event, until Ctrl-C."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer

from chaosctl.cli.shapes import help_block
from chaosctl.results.playbook import WatchEvent, WatchRound

HELP = (
    "Every --interval: evaluate every playbook's detect phase and remediate (then verify) "
    "each incident that fires, with the same guardrails as `chaosctl remediate --yes` "
    "(lock, action cap, nothing for incidents no longer firing). A playbook is not run again "
    "within --cooldown of its last run (its detection windows still show the incident for a "
    "while). Prints one line per event; every remediation writes a JSON journal to "
    "$CHAOSCTL_HOME/journal/.\n\n"
    "Stops after --count rounds (exit 0), or on Ctrl-C: the current step finishes its "
    "journal entry, the lock is released, and the exit code is 130.\n\n"
    + help_block("--json prints one JSON object per line: after each round", WatchRound)
    + "\n" + help_block("and for each engine event (run_end also carries \"status\" and the "
                 "\"result\", a RUN as in `chaosctl remediate --help`)", WatchEvent)
)


def _seconds(text: str) -> float:
    from chaosctl.errors import InvalidInputError
    from chaosctl.playbook.model import parse_duration

    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise InvalidInputError(f"--interval/--cooldown: {exc}") from exc
    return value


class _Lines:
    """An engine listener: one line (or JSON object) per meaningful event."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def emit(self, kind: str, playbook: str | None, data: dict[str, Any]) -> None:
        if self.as_json:
            from chaosctl.results import dump

            line = {"event": kind, "playbook": playbook, **data}
            shaped = dump(WatchRound if kind == "round" else WatchEvent, line)
            typer.echo(json.dumps(shaped, default=str))
            return
        stamp = time.strftime("%H:%M:%S")
        text = self._text(kind, playbook, data)
        if text:
            typer.echo(f"{stamp} {text}")

    def _text(self, kind: str, pb: str | None, d: dict[str, Any]) -> str | None:
        if kind == "round":
            if d.get("error"):
                return f"round: cannot detect: {d['error']}"
            skipped = "; ".join(f"{s['playbook']} skipped ({s['reason']})"
                                for s in d.get("skipped", []))
            firing = ", ".join(d["firing"]) or "nothing firing"
            return f"round: {firing}" + (f"; {skipped}" if skipped else "")
        if kind == "run_start":
            return f"{pb}: remediating"
        if kind == "step_end":
            s = d["step"]
            return (f"{pb}: {s['status']} {s['name']} ({s['duration_s']:.2f}s)"
                    + (f": {s['error']}" if s["error"] else ""))
        if kind == "verify_end":
            return f"{pb}: verify {'passed' if d['passed'] else 'FAILED'} after " \
                   f"{d['duration_s']:.1f}s" + ("" if d["passed"] else
                                                f"; still failing: {d.get('failing')}")
        if kind == "run_end":
            r = d["result"]
            return f"{pb}: {r['status']}"
        return None

    def __call__(self, event: Any) -> None:
        if event.kind in ("run_start", "step_end", "verify_end", "run_end"):
            data = event.data
            if self.as_json and event.kind == "run_end":
                data = {"status": data["result"]["status"], "result": data["result"]}
            self.emit(event.kind, event.subject, {"at": event.at, **data})


def watch(
    interval: Annotated[str, typer.Option("--interval", help="Time between rounds, e.g. 2s.")]
    = "2s",
    count: Annotated[int | None, typer.Option("--count", min=1,
                                              help="Stop after N rounds.")] = None,
    cooldown: Annotated[str, typer.Option(
        "--cooldown", help="Do not re-run a playbook within this time of its last run.")]
    = "30s",
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines (shape above).")] = False,
) -> None:
    from chaosctl.config import load_settings
    from chaosctl.playbook import api

    every, cool = _seconds(interval), _seconds(cooldown)
    lines = _Lines(as_json)
    engine = api.build_engine(load_settings(), [lines])
    last_run: dict[str, float] = {}
    rounds = 0
    try:
        while count is None or rounds < count:
            started = time.monotonic()
            result = api.watch_round(engine, last_run, cool)
            rounds += 1
            lines.emit("round", None, {"at": result["at"], "firing": result["firing"],
                                       "skipped": result["skipped"], "error": result["error"]})
            if count is not None and rounds >= count:
                break
            time.sleep(max(0.0, every - (time.monotonic() - started)))
    except KeyboardInterrupt:
        # The lock is a context manager and the journal is written per step: both are safe.
        if not as_json:
            typer.echo("watch: interrupted", err=True)
        raise typer.Exit(130) from None


def register(app: typer.Typer) -> None:
    app.command(name="watch", help=HELP)(watch)

"""Entry point: the typer app, built from a static table of command modules.

The table (`COMMANDS`) names every command and the module that registers it. A command's
module is imported only when that command runs (or its help is shown), because importing
all of them, and the libraries they use, is most of what `chaosctl --help` used to cost.
The table is static: `tests/unit/test_cli_commands.py` imports every module in it and checks
that it registers exactly the named command, so a renamed or broken module fails the tests,
and at run time it fails with its ImportError instead of silently dropping its command.

Help is plain click formatting (`rich_markup_mode=None`): typer's rich help imports rich,
markdown-it and pygments, about 0.26 s on the 2-core machine, more than the whole 150 ms
budget of `chaosctl --help`.

typer itself is imported only when the app is built (`app`, on first use): `chaosctl health`
with plainly valid options runs without it (`chaosctl.cli.health.parse_fast`), because
importing typer costs ~120 ms CPU and running a typer command with a non-flag option imports
pydantic for it (~150 ms more), together more than the runbook's whole curl loop.

The single error handler lives in `run()`: a ChaosctlError prints one line (no traceback
unless --verbose) and exits with its code; Ctrl-C exits 130.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator, MutableMapping
from typing import Any, NamedTuple

from chaosctl import __version__
from chaosctl.errors import ChaosctlError, ExitCode


class CommandEntry(NamedTuple):
    module: str  # defines `register(app)`, which adds exactly this one command or group
    summary: str  # the first sentence of its help: the line `chaosctl --help` shows


# In the order `chaosctl --help` lists them (the runbook's order: look, diagnose, fix).
COMMANDS: dict[str, CommandEntry] = {
    "health": CommandEntry(
        "chaosctl.cli.health", "Check the whole stack at once: the five services' /health, "
        "the gateway's breakers, Redis, Prometheus (ready, and every scrape target up) and "
        "any chaos key still set in Redis (\"may have been left enabled\", with its "
        "remaining TTL)."),
    "diagnose": CommandEntry(
        "chaosctl.cli.diagnose", "Evaluate every playbook's detect phase (or only the named "
        "ones) against Prometheus and the stack: which incidents fire, each symptom's "
        "current value against its threshold, and, for firing incidents, the evidence of "
        "their diagnose steps."),
    "remediate": CommandEntry(
        "chaosctl.cli.remediate", "Run the remediate phase of a playbook (or, with --auto, "
        "of every incident `diagnose` finds firing), then its verify phase, printing each "
        "step live with its duration."),
    "watch": CommandEntry(
        "chaosctl.cli.watch", "Every --interval: evaluate every playbook's detect phase and "
        "remediate (then verify) each incident that fires, with the same guardrails as "
        "`chaosctl remediate --yes` (lock, action cap, nothing for incidents no longer "
        "firing)."),
    "game-day": CommandEntry(
        "chaosctl.cli.gameday", "Rehearse runbook incidents under real traffic and score "
        "them."),
    "experiment": CommandEntry(
        "chaosctl.cli.experiment", "Reproduce the seed study's results tables on this "
        "machine, beside the paper's."),
    "stack": CommandEntry(
        "chaosctl.cli.stack", "Run the bundled shop stack on this machine: redis-server, "
        "prometheus and the five services (gateway, orders, payments, inventory, "
        "notifications) as separate processes."),
    "inject": CommandEntry(
        "chaosctl.cli.inject", "Break the stack on purpose, one runbook fault at a time."),
    "chaos": CommandEntry(
        "chaosctl.cli.chaos", "What chaos is active (status), the halt (clear) and the "
        "audit trail (log)."),
    "playbooks": CommandEntry(
        "chaosctl.cli.playbooks", "The runbook as code: one YAML playbook per incident in "
        "playbooks/ (detect, diagnose, remediate, verify)."),
}


def load_command(name: str) -> Any:
    """Import the module of command `name` and return the click command it registers.

    An ImportError propagates: a broken module must fail loudly, never drop its command.
    """
    import typer

    entry = COMMANDS[name]
    module = importlib.import_module(entry.module)
    holder = typer.Typer(rich_markup_mode=None, add_completion=False)
    module.register(holder)
    commands = typer.main.get_group(holder).commands
    if set(commands) != {name}:
        raise RuntimeError(f"{entry.module}.register() added {sorted(commands)}, not {name!r}; "
                           "fix COMMANDS in chaosctl/cli/main.py")
    return commands[name]


class _LazyCommands(MutableMapping[str, Any]):
    """click's `group.commands`, loading each command's module on first access."""

    def __init__(self) -> None:
        self._loaded: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._loaded:
            if name not in COMMANDS:
                raise KeyError(name)
            self._loaded[name] = load_command(name)
        return self._loaded[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        del self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        yield from COMMANDS
        yield from (name for name in self._loaded if name not in COMMANDS)

    def __len__(self) -> int:
        return len(COMMANDS) + sum(name not in COMMANDS for name in self._loaded)


def _shorten(text: str, limit: int) -> str:
    """Cut at a word boundary with '...' when the summary is wider than the terminal allows."""
    if len(text) <= limit:
        return text
    return text[: limit - 3].rsplit(" ", 1)[0] + "..."


_APP: Any = None


def _typer_app() -> Any:
    """The typer app, built on first use (see the module docstring for why not at import)."""
    global _APP
    if _APP is None:
        _APP = _build_app()
    return _APP


def __getattr__(name: str) -> Any:
    if name == "app":  # `from chaosctl.cli.main import app` (tests, docs) builds it
        return _typer_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _build_app() -> Any:
    import typer
    from typer.core import TyperGroup

    class LazyGroup(TyperGroup):
        """The root group: commands from `COMMANDS`, imported when used."""

        def __init__(self, **attrs: Any) -> None:
            super().__init__(**attrs)
            lazy = _LazyCommands()
            for name, command in self.commands.items():
                lazy[name] = command
            self.commands = lazy

        def list_commands(self, ctx: Any) -> list[str]:
            return list(self.commands)  # names only: listing must not import the modules

        def format_commands(self, ctx: Any, formatter: Any) -> None:
            # The table's summaries, so the root help imports no command module.
            names = self.list_commands(ctx)
            limit = formatter.width - 6 - max(len(name) for name in names)
            rows = []
            for name in names:
                summary = COMMANDS[name].summary if name in COMMANDS else (
                    self.commands[name].get_short_help_str(limit))
                rows.append((name, _shorten(summary, limit)))
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    app = typer.Typer(
        name="chaosctl",
        cls=LazyGroup,
        help=(
            "Executable incident runbooks: run the shop stack, break it on purpose, detect "
            "what broke from Prometheus, repair it, verify recovery, and rehearse it all "
            "under load."
        ),
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    def _version(value: bool) -> None:
        if value:
            typer.echo(f"chaosctl {__version__}")
            raise typer.Exit()

    @app.callback()
    def main(
        verbose: bool = typer.Option(
            False, "--verbose", "-v", help="Show tracebacks for errors (for bug reports)."
        ),
        version: bool = typer.Option(
            False, "--version", callback=_version, is_eager=True,
            help="Print the version and exit.",
        ),
    ) -> None:
        if verbose:
            os.environ["CHAOSCTL_VERBOSE"] = "1"

    return app


def run() -> None:
    """Console-script entry point with the one error handler.

    click handles usage errors itself (exit 2); everything chaosctl raises lands here.
    """
    try:
        code = _fast_path(sys.argv[1:])
        if code is None:
            _typer_app()()
        else:
            sys.exit(code)
    except ChaosctlError as exc:
        if os.environ.get("CHAOSCTL_VERBOSE"):
            raise
        print(f"chaosctl: error: {exc}", file=sys.stderr)
        sys.exit(int(exc.exit_code))
    except KeyboardInterrupt:
        print("chaosctl: interrupted", file=sys.stderr)
        sys.exit(int(ExitCode.INTERRUPTED))


def _fast_path(args: list[str]) -> int | None:
    """`chaosctl health` without typer when its options are plainly valid: its exit code, or
    None for every other command line."""
    if args[:1] != ["health"]:
        return None
    from chaosctl.cli import health

    options = health.parse_fast(args[1:])
    return None if options is None else health.execute(options)


if __name__ == "__main__":
    run()

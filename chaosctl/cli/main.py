"""Entry point: builds the typer app from one module per command group.

The single error handler lives in `run()`: a ChaosctlError prints one line (no traceback
unless --verbose) and exits with its code; Ctrl-C exits 130.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

from chaosctl import __version__
from chaosctl.errors import ChaosctlError, ExitCode

app = typer.Typer(
    name="chaosctl",
    help=(
        "Executable incident runbooks: run the shop stack, break it on purpose, detect what "
        "broke from Prometheus, repair it, verify recovery, and rehearse it all under load."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Each module defines `register(app)`; keeping them separate keeps each command thin.
COMMAND_MODULES = (
    "chaosctl.cli.stack",
    "chaosctl.cli.health",
    "chaosctl.cli.inject",
    "chaosctl.cli.chaos",
    "chaosctl.cli.diagnose",
    "chaosctl.cli.remediate",
    "chaosctl.cli.playbooks",
    "chaosctl.cli.watch",
    "chaosctl.cli.gameday",
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
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    if verbose:
        os.environ["CHAOSCTL_VERBOSE"] = "1"


for _name in COMMAND_MODULES:
    try:
        _module = importlib.import_module(_name)
    except ModuleNotFoundError as _exc:  # a command group not built yet in this checkout
        if _exc.name != _name:
            raise
        continue
    _module.register(app)


def run() -> None:
    """Console-script entry point with the one error handler.

    click handles usage errors itself (exit 2); everything chaosctl raises lands here.
    """
    try:
        app()
    except ChaosctlError as exc:
        if os.environ.get("CHAOSCTL_VERBOSE"):
            raise
        print(f"chaosctl: error: {exc}", file=sys.stderr)
        sys.exit(int(exc.exit_code))
    except KeyboardInterrupt:
        print("chaosctl: interrupted", file=sys.stderr)
        sys.exit(int(ExitCode.INTERRUPTED))


if __name__ == "__main__":
    run()

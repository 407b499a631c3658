"""Every command has help text and is documented in README.md.

Walks the real typer app, so a command added without docs fails here: that is the point.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from chaosctl.cli.main import app

README = Path(__file__).resolve().parents[1] / "README.md"


def command_paths() -> list[tuple[str, ...]]:
    root = typer.main.get_command(app)
    paths: list[tuple[str, ...]] = []

    def walk(command: Any, path: tuple[str, ...]) -> None:
        if path:
            paths.append(path)
        # Duck-typed: recent typer vendors its own click, so isinstance(click.Group) fails.
        if hasattr(command, "commands"):
            for name, sub in sorted(command.commands.items()):
                if not sub.hidden:
                    walk(sub, (*path, name))

    walk(root, ())
    return paths


PATHS = command_paths()


def test_the_app_has_commands() -> None:
    # Guards the parametrized tests below against silently testing nothing.
    assert ("health",) in PATHS
    assert len(PATHS) >= 2


@pytest.mark.parametrize("path", PATHS, ids=" ".join)
def test_command_has_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert f"Usage: chaosctl {' '.join(path)}" in " ".join(result.output.split())
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    text = (command.help or command.short_help or "").strip()
    assert text, f"`chaosctl {' '.join(path)}` has no help text"


@pytest.mark.parametrize("path", PATHS, ids=" ".join)
def test_command_is_in_readme(path: tuple[str, ...]) -> None:
    full = "chaosctl " + " ".join(path)
    assert full in README.read_text(), f"README.md does not mention `{full}`; document it"


def test_readme_starts_with_the_two_commands() -> None:
    head = README.read_text().split("##", 1)[0]
    assert "make demo" in head and "make test" in head

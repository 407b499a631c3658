"""The static command table of chaosctl/cli/main.py: every entry's module imports and
registers exactly its command, and nothing registers a command the table does not list.

A renamed or broken command module fails here (and, at run time, with its ImportError),
instead of its command silently disappearing from `chaosctl`.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import chaosctl.cli
from chaosctl.cli.main import COMMANDS, load_command


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_entry_registers_its_command_with_the_tables_summary(name: str) -> None:
    command = load_command(name)
    assert command.name == name
    help_text = " ".join((command.help or "").split())
    assert help_text.startswith(COMMANDS[name].summary), (
        f"COMMANDS[{name!r}].summary must be the start of the command's help")


def test_every_module_with_register_is_in_the_table() -> None:
    path = Path(chaosctl.cli.__file__).parent
    registering = {m.name for m in pkgutil.iter_modules([str(path)])
                   if "\ndef register(" in (path / f"{m.name}.py").read_text()}
    assert {f"chaosctl.cli.{m}" for m in registering} == {e.module for e in COMMANDS.values()}


def test_root_help_lists_every_command_without_importing_them() -> None:
    code = ("import sys\nfrom chaosctl.cli.main import run\nsys.argv = ['chaosctl', '--help']\n"
            "try:\n    run()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('chaosctl.cli.')"
            " and m != 'chaosctl.cli.main'))\n"
            "print(sorted(m for m in ('rich', 'pydantic', 'httpx', 'redis') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60).stdout
    for name in COMMANDS:
        assert f"\n  {name} " in out
    assert out.rstrip().splitlines()[-2:] == ["[]", "[]"], out


def test_a_broken_module_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    from chaosctl.cli import main

    monkeypatch.setitem(main.COMMANDS, "health",
                        main.CommandEntry("chaosctl.cli.no_such_module", "x"))
    with pytest.raises(ModuleNotFoundError):
        load_command("health")

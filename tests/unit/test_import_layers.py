"""Packages depend only downward: import-linter's layers contract from pyproject.toml.

domain -> clients -> runtime -> chaos -> playbook -> gameday -> cli (design.md, issue 11).
import-linter follows function-local imports too, so a lazy import cannot hide a cycle.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import chaosctl

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = Path(chaosctl.__file__).resolve().parent


def layer_modules() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["type"] == "layers"]
    names: set[str] = set()
    for layer in contract["layers"]:
        names.update(part.strip() for part in layer.replace("|", ":").split(":"))
    return names


def test_layers_contract_is_kept() -> None:
    # This interpreter's import-linter, without its cache directory in the working tree.
    result = subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import "
                             "lint_imports; sys.exit(lint_imports(no_cache=True))"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    report = result.stdout[result.stdout.find("Broken contracts"):] or result.stdout
    assert result.returncode == 0, f"an import goes up a layer:\n{report}\n{result.stderr}"


def test_every_module_of_chaosctl_sits_in_a_layer() -> None:
    """A new top-level module or package must be given a layer, or nothing checks it."""
    found = {f"chaosctl.{p.stem}" for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    found |= {f"chaosctl.{p.parent.name}" for p in PACKAGE.glob("*/__init__.py")}
    missing = sorted(found - layer_modules())
    assert not missing, f"add these to [tool.importlinter] layers in pyproject.toml: {missing}"

"""Every `--json` shape is pinned: the models against a checked-in schema snapshot, and the
real commands' output against the models.

A deliberate shape change: edit the model in chaosctl/results/, then
    CHAOSCTL_UPDATE_CONTRACTS=1 .venv/bin/pytest tests/unit/test_json_contracts.py
    .venv/bin/python -m chaosctl.cli.shapes README.md
and bump chaosctl.results.SCHEMA_VERSION when the change is incompatible (a field removed,
renamed or retyped). The commands run as a user runs them, without a stack: nothing
listening on free ports, so every check really connects and is refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from chaosctl.cli.shapes import contracts, readme_block, shape
from chaosctl.results import SCHEMA_VERSION, chaos, health, playbook, stack
from tests.support import free_ports

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT = Path(__file__).with_name("json_contracts.snapshot.json")
PORTS = ("gateway", "orders", "payments", "inventory", "notifications", "redis", "prometheus")


def schemas() -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "contracts": {
        name: TypeAdapter(model).json_schema(mode="serialization")
        for name, (model, _) in contracts().items()}}


def test_shapes_match_the_checked_in_snapshot() -> None:
    current = schemas()
    if os.environ.get("CHAOSCTL_UPDATE_CONTRACTS"):
        SNAPSHOT.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
    pinned = json.loads(SNAPSHOT.read_text())
    changed = sorted(name for name in current["contracts"].keys() | pinned["contracts"].keys()
                     if current["contracts"].get(name) != pinned["contracts"].get(name))
    assert not changed, (f"--json shapes changed: {changed}; if on purpose, see this module's "
                         "docstring (snapshot, README, SCHEMA_VERSION)")
    assert current["schema_version"] == pinned["schema_version"]


def test_readme_shows_the_generated_shapes() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in ("health", "diagnose", "remediate", "watch round", "watch event", "game-day",
                 "experiment"):
        block = f"<!-- json-shape: {name} -->\n```\n{readme_block(name)}\n```"
        assert block in readme, (f"README's {name!r} shape is stale: run "
                                 "`.venv/bin/python -m chaosctl.cli.shapes README.md`")


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAOSCTL_")}
    env["CHAOSCTL_HOME"] = str(home)
    env.update({f"CHAOSCTL_{n.upper()}_PORT": str(p)
                for n, p in zip(PORTS, free_ports(len(PORTS)), strict=True)})
    return subprocess.run([sys.executable, "-m", "chaosctl.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


# command line -> (the model its output must match, the exit codes it may have)
RUNS: dict[tuple[str, ...], tuple[Any, tuple[int, ...]]] = {
    ("health", "--json"): (health.HealthReport, (1,)),
    ("stack", "status", "--json"): (stack.StackStatusResult, (1,)),
    ("chaos", "status", "--json"): (chaos.ChaosStatusResult, (1,)),
    ("chaos", "log", "--json"): (list[chaos.AuditEntry], (0,)),
    ("inject", "payment-errors", "--rate", "0.2", "--dry-run", "--json"):
        (chaos.InjectResult, (0,)),
    ("playbooks", "list", "--json"): (list[playbook.PlaybookEntry], (0,)),
    ("diagnose", "--json"): (playbook.DiagnoseResult, (2,)),
}


@pytest.mark.parametrize("args", list(RUNS), ids=" ".join)
def test_command_output_matches_its_model(args: tuple[str, ...], tmp_path: Path) -> None:
    model, codes = RUNS[args]
    if args[:2] == ("chaos", "log"):  # an audit trail to print: one dry-run inject
        assert cli(tmp_path, "inject", "payment-errors", "--rate", "0.2",
                   "--dry-run").returncode == 0
    result = cli(tmp_path, *args)
    assert result.returncode in codes, result.stderr
    data = json.loads(result.stdout)
    TypeAdapter(model).validate_python(data, strict=False)
    if args[:2] == ("chaos", "log"):
        assert data and data[-1]["outcome"] == "dry_run"


def test_every_shape_is_in_its_commands_help(tmp_path: Path) -> None:
    helps = {"health": ("health",), "stack status": ("stack", "status"),
             "stack up": ("stack", "up"), "stack down": ("stack", "down"),
             "inject": ("inject",), "chaos status": ("chaos", "status"),
             "chaos clear": ("chaos", "clear"), "chaos log": ("chaos", "log"),
             "playbooks list": ("playbooks", "list"),
             "playbooks validate": ("playbooks", "validate"), "diagnose": ("diagnose",),
             "remediate": ("remediate",), "watch round": ("watch",),
             "watch event": ("watch",), "game-day": ("game-day",),
             "experiment": ("experiment",)}
    assert set(helps) == set(contracts())
    for name, (model, names) in contracts().items():
        text = cli(tmp_path, *helps[name], "--help").stdout
        flat = " ".join(text.split())
        assert " ".join(shape(model, names).split()) in flat, f"{name}: shape not in --help"


def test_a_changed_status_is_refused_not_printed() -> None:
    # Literal statuses: a value outside the documented set fails validation, so a core change
    # cannot print an undocumented status.
    with pytest.raises(ValueError):
        health.ServiceHealth(status="sort-of-ok", url="u")
    with pytest.raises(ValueError):
        playbook.Run.model_validate({"status": "maybe"})

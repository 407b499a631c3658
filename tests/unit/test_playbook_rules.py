"""The shipped alerts.yml is what `chaosctl playbooks rules` generates, and promtool accepts it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from chaosctl.playbook.library import load_catalog
from chaosctl.playbook.model import Playbook
from chaosctl.playbook.rules import condition_promql, render_rules, shipped_rules_path

REPO = Path(__file__).resolve().parents[2]


def test_shipped_rules_are_up_to_date() -> None:
    expected = render_rules(load_catalog(check_promql=False).all())
    shipped = shipped_rules_path().read_text()
    assert shipped == expected, "stack/prometheus/rules/alerts.yml is stale: run " \
                                "`chaosctl playbooks rules` and commit the result"


def test_one_alert_per_playbook_with_labels() -> None:
    rules = yaml.safe_load(shipped_rules_path().read_text())["groups"][0]["rules"]
    assert {r["labels"]["playbook"] for r in rules} == set(load_catalog(check_promql=False)
                                                           .names())
    for rule in rules:
        name = rule["labels"]["playbook"]
        assert rule["annotations"]["remediate"] == f"chaosctl remediate {name}"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_accepts_the_shipped_rules() -> None:
    result = subprocess.run(["promtool", "check", "rules", str(shipped_rules_path())],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    playbooks = len(load_catalog(check_promql=False).names())
    assert f"SUCCESS: {playbooks} rules found" in result.stdout


def test_combination_is_label_free() -> None:
    pb = Playbook.model_validate({
        "name": "x", "title": "x", "severity": "info", "runbook": "x",
        "detect": {"any": [
            {"all": [{"query": "a", "op": ">", "threshold": 1},
                     {"chaos_key": "chaos:payments:error_rate"}]},
            {"not": {"query": "b", "op": "==", "threshold": 0}},
            {"health": "payments", "status": "down"}]},
        "remediate": [{"action": "advise", "params": {"message": "m"}}],
        "verify": {"conditions": [{"query": "c", "op": "<", "threshold": 2}]},
    })
    assert condition_promql(pb.detect) == "(count((a) > 1) or absent(count((b) == 0)))"


def test_check_flag_detects_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "alerts.yml"
    stale.write_text("groups: []\n")
    cli = [sys.executable, "-m", "chaosctl.cli.main", "playbooks", "rules"]
    result = subprocess.run([*cli, "--output", str(stale), "--check"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1 and "out of date" in result.stderr
    result = subprocess.run([*cli, "--output", str(stale)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0
    result = subprocess.run([*cli, "--output", str(stale), "--check"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert stale.read_text() == shipped_rules_path().read_text()

"""The shipped and the rendered Prometheus files pass promtool (the real one, no mocks)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from chaosctl.config import Settings
from chaosctl.domain import SERVICES
from chaosctl.resources import stack_dir
from chaosctl.runtime.prometheus_config import write_prometheus_config

PROM_DIR = stack_dir() / "prometheus"
pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60)


def assert_rule_files_found(result: subprocess.CompletedProcess[str]) -> None:
    # The rules glob must match recording.yml (and any generated alerts.yml), not nothing.
    found = re.search(r"SUCCESS: (\d+) rule files found", result.stdout + result.stderr)
    assert found and int(found.group(1)) >= 1, result.stdout + result.stderr


def test_shipped_config_passes_promtool() -> None:
    result = promtool("check", "config", str(PROM_DIR / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert_rule_files_found(result)


def test_shipped_rules_pass_promtool_and_define_the_runbook_metrics() -> None:
    rules = PROM_DIR / "rules" / "recording.yml"
    result = promtool("check", "rules", str(rules))
    assert result.returncode == 0, result.stdout + result.stderr
    group = yaml.safe_load(rules.read_text())["groups"][0]
    assert group["interval"] == "1s"
    assert {r["record"] for r in group["rules"]} == {"order_success_rate", "http_req_failed_rate"}


def test_shipped_config_matches_default_ports() -> None:
    config = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    targets = {j["job_name"]: j["static_configs"][0]["targets"] for j in config["scrape_configs"]}
    assert targets == {s: [f"127.0.0.1:{8000 + i}"] for i, s in enumerate(SERVICES)}
    assert config["global"]["scrape_interval"] == "1s"


def test_rendered_config_uses_configured_ports_and_passes_promtool(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, gateway_port=18000, payments_port=18002)
    dest = tmp_path / "prom" / "prometheus.yml"
    write_prometheus_config(settings, PROM_DIR / "rules", dest)
    result = promtool("check", "config", str(dest))
    assert result.returncode == 0, result.stdout + result.stderr
    assert_rule_files_found(result)
    config = yaml.safe_load(dest.read_text())
    jobs = {j["job_name"]: j["static_configs"][0]["targets"][0] for j in config["scrape_configs"]}
    assert jobs["gateway"] == "127.0.0.1:18000"
    assert jobs["payments"] == "127.0.0.1:18002"
    assert set(jobs) == set(SERVICES)

"""stack/compose.yaml + Dockerfile can't run here (no Docker engine), so lock what can be
checked without one: the YAML parses, the topology and wiring match the local stack, the
Prometheus config for containers is valid, and the image installs what the code imports."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

STACK = Path(__file__).resolve().parents[2] / "stack"
PORTS = {"gateway": 8000, "orders": 8001, "payments": 8002, "inventory": 8003,
         "notifications": 8004}


def _compose() -> dict:
    return yaml.safe_load((STACK / "compose.yaml").read_text())


def test_compose_has_the_stack_topology() -> None:
    services = _compose()["services"]
    assert set(services) == {*PORTS, "redis", "postgres", "prometheus"}


@pytest.mark.parametrize("name", sorted(PORTS))
def test_each_shop_service_is_wired_like_the_local_stack(name: str) -> None:
    service = _compose()["services"][name]
    port = PORTS[name]
    assert service["build"]["context"] == "."
    assert service["command"] == [name, "--port", str(port), "--host", "0.0.0.0"]
    assert service["ports"] == [f"127.0.0.1:{port}:{port}"]  # loopback only on the host
    env = service["environment"]
    for other, other_port in PORTS.items():
        assert env[f"SHOP_{other.upper()}_URL"] == f"http://{other}:{other_port}"
    assert env["SHOP_REDIS_URL"] == "redis://redis:6379/0"
    assert env["DATABASE_URL"].startswith("postgresql://") and "@postgres:5432/" in env[
        "DATABASE_URL"]
    assert env["CHAOSCTL_ADMIN_TOKEN"].startswith("${CHAOSCTL_ADMIN_TOKEN:?")
    assert env["PROMETHEUS_MULTIPROC_DIR"]
    assert f"127.0.0.1:{port}/health" in " ".join(service["healthcheck"]["test"])
    assert set(service["depends_on"]) == {"redis", "postgres"}


def test_prometheus_in_compose_scrapes_container_hostnames() -> None:
    compose = _compose()["services"]["prometheus"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in compose["volumes"]}
    assert mounts["/etc/prometheus/prometheus.yml"] == "./prometheus/prometheus.compose.yml"
    assert mounts["/etc/prometheus/rules"] == "./prometheus/rules"
    config = yaml.safe_load((STACK / "prometheus" / "prometheus.compose.yml").read_text())
    local = yaml.safe_load((STACK / "prometheus" / "prometheus.yml").read_text())
    assert config["global"] == local["global"] and config["rule_files"] == local["rule_files"]
    jobs = {job["job_name"]: job["static_configs"][0]["targets"]
            for job in config["scrape_configs"]}
    assert jobs == {name: [f"{name}:{port}"] for name, port in PORTS.items()}


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool not installed")
def test_compose_prometheus_config_passes_promtool() -> None:
    result = subprocess.run(["promtool", "check", "config",
                             str(STACK / "prometheus" / "prometheus.compose.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def _third_party_imports() -> set[str]:
    found: set[str] = set()
    for path in (STACK / "shop").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m != "shop"}


def test_dockerfile_installs_every_library_the_services_import() -> None:
    dockerfile = (STACK / "Dockerfile").read_text()
    installed = {m.lower().replace("-", "_")
                 for m in re.findall(r'"([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?>=', dockerfile)}
    provided_by = {"starlette": "fastapi"}  # a dependency of fastapi, not installed on its own
    for module in _third_party_imports():
        assert provided_by.get(module, module) in installed, f"{module} missing in Dockerfile"
    assert "psycopg" in installed  # DATABASE_URL=postgresql:// in compose needs the driver
    assert "COPY shop/ /app/shop/" in dockerfile

"""What can be checked of the containerised stack without an engine: compose.yaml's wiring, the
Prometheus config the containers use, the offline Dockerfile, the image's requirement set,
and `--backend docker` with no engine (one line, exit 2). tests/docker runs it all for real."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import yaml

from chaosctl.runtime.docker_image import _stack_imports, stack_requirements

STACK = Path(__file__).resolve().parents[2] / "stack"
PORTS = {"gateway": 8000, "orders": 8001, "payments": 8002, "inventory": 8003,
         "notifications": 8004}


def _compose() -> dict:
    return yaml.safe_load((STACK / "compose.yaml").read_text())


def test_compose_has_the_stack_topology_from_one_local_image() -> None:
    services = _compose()["services"]
    assert set(services) == {*PORTS, "redis", "prometheus", "edge"}
    for name, service in services.items():
        assert service["image"] == "chaosctl-shop:latest", name
        assert "build" not in service, f"{name}: no registry here; `chaosctl stack build`"
        assert "restart" not in service, f"{name}: a killed container must stay down"


@pytest.mark.parametrize("name", sorted(PORTS))
def test_each_shop_service_is_wired_by_service_name(name: str) -> None:
    service = _compose()["services"][name]
    assert service["command"] == [name, "--port", str(PORTS[name]), "--host", "0.0.0.0"]
    assert "ports" not in service  # the edge owns the port, so `--scale` works
    env = service["environment"]
    for other, other_port in PORTS.items():
        assert env[f"SHOP_{other.upper()}_URL"] == f"http://{other}:{other_port}"
    assert env["SHOP_REDIS_URL"] == "redis://redis:6379/0"
    assert env["CHAOSCTL_ADMIN_TOKEN"].startswith("${CHAOSCTL_ADMIN_TOKEN:?")
    # the named volume, or (CHAOSCTL_DATA_DIR) a bind of the directory game-day reads
    assert service["volumes"] == ["${CHAOSCTL_DATA_DIR:-shopdata}:/data"]
    assert "redis" in service["depends_on"]


def test_every_published_port_is_loopback_and_configurable() -> None:
    services = _compose()["services"]
    edge = services["edge"]
    expected = [f"127.0.0.1:${{CHAOSCTL_{n.upper()}_PORT:-{p}}}:{p}" for n, p in PORTS.items()]
    assert edge["ports"] == expected
    assert edge["command"] == [f"{p}={n}:{p}" for n, p in PORTS.items()]
    assert services["redis"]["ports"] == ["127.0.0.1:${CHAOSCTL_REDIS_PORT:-6379}:6379"]
    assert services["prometheus"]["ports"] == [
        "127.0.0.1:${CHAOSCTL_PROMETHEUS_PORT:-9090}:9090"]


def test_container_prometheus_scrapes_every_replica_and_the_service_name() -> None:
    config = yaml.safe_load((STACK / "image" / "prometheus.yml").read_text())
    local = yaml.safe_load((STACK / "prometheus" / "prometheus.yml").read_text())
    assert config["global"] == local["global"]
    assert config["rule_files"] == ["/etc/chaosctl/prometheus/rules/*.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == set(PORTS)
    for name, port in PORTS.items():
        job = jobs[name]
        assert job["dns_sd_configs"] == [{"names": [name], "type": "A", "port": port,
                                          "refresh_interval": "1s"}]
        (static,) = job["static_configs"]
        assert static == {"targets": [f"{name}:{port}"], "labels": {"probe": "service-name"}}
        # the service-name target only feeds `up`: its samples would count a replica twice
        assert job["metric_relabel_configs"] == [
            {"source_labels": ["probe"], "regex": "service-name", "action": "drop"}]


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool not installed")
def test_container_prometheus_config_passes_promtool() -> None:
    result = subprocess.run(["promtool", "check", "config", str(STACK / "image" /
                                                                 "prometheus.yml")],
                            capture_output=True, text=True, timeout=60)
    # The absolute rules path exists only in the image; the config itself must be valid.
    assert "SUCCESS" in result.stdout + result.stderr or result.returncode == 0, (
        result.stdout + result.stderr)


def test_dockerfile_builds_offline_from_the_local_base() -> None:
    dockerfile = (STACK / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=localhost/", dockerfile, re.M)
    assert "FROM ${BASE_IMAGE}" in dockerfile
    assert "--no-index" in dockerfile and "--find-links /tmp/wheels" in dockerfile
    for copy in ("COPY shop/ /app/shop/", "COPY image/ /app/image/",
                 "COPY prometheus/ /etc/chaosctl/prometheus/"):
        assert copy in dockerfile
    assert "pip install" not in dockerfile.replace("/opt/venv/bin/pip install --no-index", "")


def test_image_requirements_cover_every_library_the_services_import() -> None:
    names = {re.split(r"[<>=;\[ ]", r, maxsplit=1)[0].lower().replace("_", "-")
             for r in stack_requirements()}
    dists = metadata.packages_distributions()
    for module in _stack_imports(STACK / "shop"):
        providers = {d.lower().replace("_", "-") for d in dists.get(module, [module])}
        covered = providers & names or any(
            providers & {x.lower() for x in (metadata.requires(n) or [])
                         for x in [re.split(r"[<>=;\[ ]", x, maxsplit=1)[0]]}
            for n in names if _installed(n))
        assert covered, f"{module} (from {providers}) is not in the image's requirements"


def _installed(name: str) -> bool:
    try:
        metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return False
    return True


def test_no_engine_is_one_line_and_exit_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHAOSCTL_", "DOCKER_"))}
    env.update({"CHAOSCTL_HOME": str(tmp_path), "DOCKER_HOST": f"unix://{tmp_path}/none.sock"})
    result = subprocess.run([sys.executable, "-m", "chaosctl.cli.main", "stack", "--backend",
                             "docker", "status"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    first = result.stderr.strip().splitlines()[0]
    assert "no container engine" in first and "DOCKER_HOST" in first


def test_edge_proxy_refuses_a_bad_route() -> None:
    sys.path.insert(0, str(STACK / "image"))
    try:
        import edge_proxy

        assert edge_proxy.parse(["8000=gateway:8000"]) == [(8000, "gateway", 8000)]
        with pytest.raises(SystemExit, match="bad route"):
            edge_proxy.parse(["gateway:8000"])
    finally:
        sys.path.remove(str(STACK / "image"))


def test_docker_services_get_shop_tuning_but_keep_their_own_wiring(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from chaosctl.config import Settings
    from chaosctl.runtime.docker import DockerBackend

    monkeypatch.setenv("SHOP_MAX_INFLIGHT", "77")  # tuning: passed on, as the local backend
    monkeypatch.setenv("SHOP_DATA_DIR", "/elsewhere")  # wiring: the container's own
    monkeypatch.setenv("SHOP_ORDERS_URL", "http://127.0.0.1:1")
    backend = DockerBackend(Settings(home=tmp_path))
    env = backend._service_env(2)
    assert env["SHOP_MAX_INFLIGHT"] == "77"
    assert env["SHOP_DATA_DIR"] == "/data" and env["SHOP_REPLICA"] == "1"
    assert env["SHOP_ORDERS_URL"] == "http://orders:8001"
    # the services' volume is bound to the directory the host-side readers use
    assert backend.data_dir == tmp_path / "data"

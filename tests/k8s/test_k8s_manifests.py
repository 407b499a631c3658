"""Contract test of stack/k8s: kustomize renders it, and a real API server (the test cluster's,
v1.20.2) accepts every object in a server-side dry run: schema, API versions and admission,
without creating anything."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.k8s.cluster import REPO, PrivateCluster

MANIFESTS = REPO / "stack" / "k8s"
# stable APIs only: the same files must apply to v1.20 and to current releases
STABLE = {"v1", "apps/v1", "rbac.authorization.k8s.io/v1", "networking.k8s.io/v1",
          "policy/v1", "storage.k8s.io/v1", "batch/v1", "autoscaling/v1"}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet"}


@pytest.fixture(scope="module")
def rendered(kubectl_bin: Path) -> list[dict[str, Any]]:
    if not (MANIFESTS / "kustomization.yaml").is_file():
        pytest.fail(f"{MANIFESTS}/kustomization.yaml is missing: the stack has no "
                    "Kubernetes manifests", pytrace=False)
    result = subprocess.run([str(kubectl_bin), "kustomize", str(MANIFESTS)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"kubectl kustomize stack/k8s failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj.get("spec", {}).get("template", {}).get("spec", {})
    return [*spec.get("containers", []), *spec.get("initContainers", [])]


def test_kustomize_renders_the_stack_with_stable_apis(rendered: list[dict[str, Any]]) -> None:
    kinds = {obj["kind"] for obj in rendered}
    assert {"Deployment", "Service", "ConfigMap", "Secret"} <= kinds, kinds
    assert {"Role", "RoleBinding"} & kinds or {"ClusterRole"} & kinds, (
        "no RBAC objects: the backend's Role ships with the manifests")
    for obj in rendered:
        where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        assert obj.get("apiVersion") in STABLE, f"{where}: {obj.get('apiVersion')} is not stable"
        assert obj.get("metadata", {}).get("name"), f"{where}: no name"


def test_every_workload_is_probed_and_never_pulls(rendered: list[dict[str, Any]]) -> None:
    """No registry is reachable: a container that must pull never starts; a Deployment
    without probes hides a dead service from the Service and from chaosctl."""
    health_probes = 0
    for obj in (o for o in rendered if o["kind"] in WORKLOADS):
        for container in obj["spec"]["template"]["spec"]["containers"]:
            where = f"{obj['kind']}/{obj['metadata']['name']} container {container['name']}"
            assert container.get("imagePullPolicy") in ("IfNotPresent", "Never"), where
            assert "readinessProbe" in container and "livenessProbe" in container, where
            paths = {container[p].get("httpGet", {}).get("path")
                     for p in ("readinessProbe", "livenessProbe")}
            health_probes += "/health" in paths
    assert health_probes >= 5, "the five services' probes use GET /health"


@pytest.fixture()
def namespace(cluster: PrivateCluster) -> Iterator[str]:
    name = f"k1-manifests-{uuid.uuid4().hex[:6]}"
    result = cluster.kubectl("create", "namespace", name)
    assert result.returncode == 0, result.stderr
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")


def test_the_api_server_accepts_every_object_in_a_server_side_dry_run(
        cluster: PrivateCluster, rendered: list[dict[str, Any]], namespace: str) -> None:
    """`kubectl apply --dry-run=server` of the rendered stack, moved into a namespace of the
    test's own (a dry-run Namespace is never created, so the stack's own could not hold the
    objects). Server-side: the API server's schema validation, defaulting and admission."""
    moved = []
    for obj in rendered:
        if _namespaced(cluster, obj["apiVersion"], obj["kind"]):
            obj = {**obj, "metadata": {**obj["metadata"], "namespace": namespace}}
        moved.append(obj)
    result = cluster.kubectl("apply", "--dry-run=server", "-o", "name", "-f", "-",
                             input=yaml.safe_dump_all(moved), timeout=120)
    assert result.returncode == 0, f"the API server refused:\n{result.stderr}"
    accepted = set(result.stdout.split())
    assert len(accepted) == len(rendered), (
        f"{len(rendered)} objects rendered, {len(accepted)} accepted: {sorted(accepted)}")
    # and nothing was created
    left = cluster.kubectl("-n", namespace, "get", "all", "-o", "name").stdout.split()
    assert left == [] or left == ["service/kubernetes"], left


def _namespaced(cluster: PrivateCluster, api_version: str, kind: str) -> bool:
    """Whether the API server keeps `kind` in namespaces (its discovery document says)."""
    path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    if path not in _DISCOVERY:
        out = cluster.kubectl("get", "--raw", path)
        assert out.returncode == 0, f"{api_version}: {out.stderr}"
        _DISCOVERY[path] = {r["kind"]: r["namespaced"] for r in json.loads(out.stdout)[
            "resources"] if "/" not in r["name"]}
    assert kind in _DISCOVERY[path], f"the API server has no {kind} in {api_version}"
    return bool(_DISCOVERY[path][kind])


_DISCOVERY: dict[str, dict[str, bool]] = {}

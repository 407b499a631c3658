"""stack/k8s as chaosctl's kubernetes backend renders it, with no cluster: namespace and image
overrides, the admin token and SHOP_* settings, stable APIs only, and the same objects as
`kubectl kustomize` (when a kubectl is installed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from chaosctl.domain import SERVICES
from chaosctl.runtime import docker_image
from chaosctl.runtime import k8s_manifests as mf
from chaosctl.runtime.base import ALL_PROCESSES
from chaosctl.runtime.docker_engine import CONTAINER_PORTS

K8S = mf.k8s_dir()
STABLE = {"v1", "apps/v1", "rbac.authorization.k8s.io/v1"}


def _render(namespace: str = "chaosctl", **kw):
    kw.setdefault("env", {})
    return mf.render(K8S, namespace, **kw)


def _containers(obj):
    return obj["spec"]["template"]["spec"]["containers"]


def test_every_object_uses_a_stable_api_and_lands_in_the_namespace():
    objects = _render("team-a")
    assert {o["apiVersion"] for o in objects} <= STABLE
    for obj in objects:
        if obj["kind"] == "Namespace":
            assert obj["metadata"]["name"] == "team-a"
        else:
            assert obj["metadata"]["namespace"] == "team-a", obj["metadata"]["name"]
    # created before what uses them: Services before Deployments (service env variables)
    kinds = [o["kind"] for o in objects]
    assert kinds.index("Deployment") > max(i for i, k in enumerate(kinds) if k == "Service")


def test_a_deployment_and_a_service_for_every_process_on_the_runbook_ports():
    objects = _render()
    deployments = mf.deployments(objects)
    services = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Service"
                and not o["metadata"]["name"].endswith("-pods")}
    assert set(deployments) == set(ALL_PROCESSES) == set(services)
    headless = {o["metadata"]["name"] for o in objects if o["kind"] == "Service"
                and o["spec"].get("clusterIP") == "None"}
    assert headless == {f"{name}-pods" for name in SERVICES}  # Prometheus's DNS targets
    for name in ALL_PROCESSES:
        assert services[name]["spec"]["ports"][0]["port"] == CONTAINER_PORTS[name]
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert labels[mf.NAME_LABEL] == name
        assert services[name]["spec"]["selector"].items() <= labels.items()


def test_services_probe_health_and_images_are_never_pulled_from_a_registry():
    for name, dep in mf.deployments(_render()).items():
        (container,) = _containers(dep)
        assert container["imagePullPolicy"] in ("IfNotPresent", "Never")
        if name in SERVICES:
            assert container["readinessProbe"]["httpGet"]["path"] == "/health"
            assert container["livenessProbe"]["httpGet"]["path"] == "/health"
            env = {e["name"]: e for e in container["env"]}
            assert env["CHAOSCTL_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == \
                mf.ADMIN_SECRET
            assert container["envFrom"] == [{"configMapRef": {"name": mf.CONFIG_MAP}}]


def test_default_image_is_the_one_stack_build_makes_and_can_be_overridden():
    images = {c["image"] for d in mf.deployments(_render()).values() for c in _containers(d)}
    assert images == {docker_image.IMAGE}
    objects = _render(env={mf.IMAGE_ENV: "registry.local/shop:7"})
    images = {c["image"] for d in mf.deployments(objects).values() for c in _containers(d)}
    assert images == {"registry.local/shop:7"}


def test_kustomize_images_entry_is_honoured(tmp_path: Path):
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy)
    kust = yaml.safe_load((copy / "kustomization.yaml").read_text())
    kust["images"] = [{"name": "chaosctl-shop", "newName": "shop", "newTag": "v2"}]
    (copy / "kustomization.yaml").write_text(yaml.safe_dump(kust))
    objects = mf.render(copy, "chaosctl", env={})
    assert {c["image"] for d in mf.deployments(objects).values()
            for c in _containers(d)} == {"shop:v2"}


def test_admin_token_and_shop_settings_reach_the_secret_and_config_map():
    objects = _render(admin_token="s3cret", database_url="postgresql://db/shop",
                      env={"SHOP_RETRIES": "0", "SHOP_ORDERS_URL": "http://elsewhere",
                           "HOME": "/root"})
    secret = next(o for o in objects if o["kind"] == "Secret")
    assert secret["stringData"] == {"token": "s3cret"}
    config = next(o for o in objects if o["metadata"]["name"] == mf.CONFIG_MAP)
    assert config["data"]["SHOP_RETRIES"] == "0"
    assert config["data"]["SHOP_DATABASE_URL"] == "postgresql://db/shop"
    assert "SHOP_ORDERS_URL" not in config["data"]  # peers are the cluster's Services
    assert "HOME" not in config["data"]


def test_an_unsupported_kustomization_field_is_one_clear_error(tmp_path: Path):
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy)
    with open(copy / "kustomization.yaml", "a") as fh:
        fh.write("patches:\n- path: extra.yaml\n")
    with pytest.raises(mf.ManifestError, match="renders only .* found patches"):
        mf.render(copy, "chaosctl", env={})


def _key(obj):
    return obj["kind"], obj["metadata"]["name"]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs a kubectl (kustomize)")
def test_same_objects_as_kubectl_kustomize():
    out = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    theirs = {_key(o): o for o in yaml.safe_load_all(out) if o}
    ours = {_key(o): o for o in _render()}
    assert theirs == ours


def _role_grants() -> set[tuple[str, str]]:
    docs = [d for d in yaml.safe_load_all((K8S / "rbac" / "chaosctl-role.yaml").read_text())
            if d]
    role = next(d for d in docs if d["kind"] == "Role")
    return {(f"{r}.{g}" if g else r, v) for rule in role["rules"]
            for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}


def test_the_chaosctl_role_grants_what_the_backend_calls_and_nothing_cluster_wide():
    from chaosctl.runtime.kubernetes import KINDS

    granted = _role_grants()
    assert not any("*" in item for pair in granted for item in pair)
    assert not any(r.split(".")[0] in ("namespaces", "nodes", "persistentvolumes", "roles",
                                       "rolebindings", "clusterroles") for r, _ in granted)
    # every kind the backend manages: read, create, update (claims: immutable), delete
    for kind, (resource, _, _) in KINDS.items():
        verbs = ("get", "create", "delete") if kind == "PersistentVolumeClaim" else (
            "get", "create", "patch", "delete")
        for verb in verbs:
            assert (resource, verb) in granted, (resource, verb)
    for pair in (("deployments.apps", "list"), ("pods", "list"), ("pods", "delete"),
                 ("pods/log", "get"), ("pods/portforward", "get")):
        assert pair in granted, pair
    # and no verb on a resource it never touches
    assert {r for r, _ in granted} == {res for res, _, _ in KINDS.values()} | {
        "pods", "pods/log", "pods/portforward"}


def test_the_backend_manages_every_kind_of_the_stack_but_not_its_own_rbac():
    from chaosctl.runtime.kubernetes import KINDS

    objects = _render()
    ours = mf.stack_objects(objects)
    assert {o["kind"] for o in ours} <= set(KINDS) | {"Namespace"}
    left_out = {(o["kind"], o["metadata"]["name"]) for o in objects if o not in ours}
    assert left_out == {("Role", "chaosctl"), ("RoleBinding", "chaosctl"),
                        ("ServiceAccount", "chaosctl")}


def test_a_new_token_or_setting_rolls_the_services_pods():
    def hashes(**kw):
        return {n: d["spec"]["template"]["metadata"].get("annotations", {}).get(mf.CONFIG_HASH)
                for n, d in mf.deployments(_render(**kw)).items()}

    first = hashes(admin_token="a")
    assert {n for n, h in first.items() if h} == set(SERVICES)  # not redis / prometheus
    assert hashes(admin_token="a") == first
    assert hashes(admin_token="b")["orders"] != first["orders"]
    assert hashes(admin_token="a", env={"SHOP_RETRIES": "0"})["orders"] != first["orders"]

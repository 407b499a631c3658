"""The stack's Kubernetes objects: stack/k8s rendered the way `kubectl kustomize` renders it,
for the parts that file uses (namespace, resources, images), plus what chaosctl sets per run.

Per run: the namespace (`--namespace`), the image (CHAOSCTL_K8S_IMAGE, else the
kustomization's `images:`), the admin token in the `chaosctl-admin` Secret, and the SHOP_*
variables set for chaosctl (as with the other backends) in the `shop-config` ConfigMap.
Pure: reads files, touches no cluster (tests/unit/test_k8s_manifests_render.py).
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chaosctl.errors import ConfigError

PART_OF_KEY, PART_OF_VALUE = "app.kubernetes.io/part-of", "chaosctl-shop"
PART_OF = f"{PART_OF_KEY}={PART_OF_VALUE}"  # label selector of everything the backend makes
NAME_LABEL = "app.kubernetes.io/name"
IMAGE_NAME = "chaosctl-shop"  # the image name the manifests use (kustomize `images:` key)
IMAGE_ENV = "CHAOSCTL_K8S_IMAGE"
CONFIG_MAP = "shop-config"
ADMIN_SECRET = "chaosctl-admin"
CONFIG_HASH = "chaosctl.io/config-hash"  # pod template annotation: token + SHOP_* settings
CLUSTER_SCOPED = frozenset({"Namespace"})
# The order objects are created in (what a Deployment's pods use exists before them: a pod
# gets the `<SERVICE>_SERVICE_HOST` variables only of Services created before it).
KIND_ORDER = ("Namespace", "ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Secret",
              "PersistentVolumeClaim", "Service", "Deployment")


class ManifestError(ConfigError):
    """stack/k8s cannot be read or uses something this renderer does not support (exit 2)."""


def k8s_dir() -> Path:
    from chaosctl.resources import stack_dir

    return stack_dir() / "k8s"


def _load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    import yaml

    try:
        docs = list(yaml.safe_load_all(path.read_text()))
    except (OSError, yaml.YAMLError) as exc:
        raise ManifestError(f"cannot read {path}: {exc}") from None
    out = []
    for doc in docs:
        if doc is None:
            continue
        if not isinstance(doc, dict) or "kind" not in doc or "metadata" not in doc:
            raise ManifestError(f"{path}: every document must be a Kubernetes object")
        out.append(doc)
    return out


def load_kustomization(directory: Path) -> dict[str, Any]:
    path = directory / "kustomization.yaml"
    docs = _load_yaml_docs_raw(path)
    supported = {"apiVersion", "kind", "namespace", "resources", "images"}
    unsupported = sorted(set(docs) - supported)
    if unsupported:
        raise ManifestError(f"{path}: chaosctl renders only {', '.join(sorted(supported))}; "
                            f"found {', '.join(unsupported)}",
                            hint="keep stack/k8s to those fields (or apply it with kubectl)")
    return docs


def _load_yaml_docs_raw(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ManifestError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{path} is not a YAML mapping")
    return data


def image_reference(kustomization: Mapping[str, Any], env: Mapping[str, str]) -> str:
    """The image the pods run: $CHAOSCTL_K8S_IMAGE, else the kustomization's override of
    IMAGE_NAME (newName/newTag/digest), else IMAGE_NAME itself."""
    explicit = env.get(IMAGE_ENV)
    if explicit:
        return explicit
    for entry in kustomization.get("images") or []:
        if isinstance(entry, dict) and entry.get("name") == IMAGE_NAME:
            name = entry.get("newName", IMAGE_NAME)
            if entry.get("digest"):
                return f"{name}@{entry['digest']}"
            return f"{name}:{entry['newTag']}" if entry.get("newTag") else str(name)
    return IMAGE_NAME


def shop_config(env: Mapping[str, str], database_url: str | None) -> dict[str, str]:
    """What chaosctl adds to the shop-config ConfigMap: SHOP_* tuning set for chaosctl
    (never the peers' URLs, which are the cluster's), and the database URL when set."""
    data = {k: v for k, v in env.items()
            if k.startswith("SHOP_") and not k.endswith("_URL") and k != "SHOP_DATA_DIR"}
    if database_url:
        data["SHOP_DATABASE_URL"] = database_url
    return data


def render(directory: Path, namespace: str, *, admin_token: str | None = None,
           env: Mapping[str, str] | None = None,
           database_url: str | None = None) -> list[dict[str, Any]]:
    """Every object of the stack, in creation order, for `namespace`."""
    env = os.environ if env is None else env
    kust = load_kustomization(directory)
    objects: list[dict[str, Any]] = []
    for entry in kust.get("resources") or []:
        path = directory / str(entry)
        if not path.is_file():
            raise ManifestError(f"{directory / 'kustomization.yaml'}: resource {entry} is not "
                                "a file (chaosctl renders files, not bases)")
        objects += _load_yaml_docs(path)
    image = image_reference(kust, env)
    extra = shop_config(env, database_url)
    accounts = {o["metadata"]["name"] for o in objects if o["kind"] == "ServiceAccount"}
    out = []
    for obj in objects:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if obj["kind"] == "Namespace":
            meta["name"] = namespace
        elif obj["kind"] not in CLUSTER_SCOPED:
            meta["namespace"] = namespace
        for subject in obj.get("subjects") or [] if obj["kind"] == "RoleBinding" else []:
            # as kustomize does: a binding to one of our ServiceAccounts follows it
            if subject.get("kind") == "ServiceAccount" and subject.get("name") in accounts:
                subject["namespace"] = namespace
        for container in _containers(obj):
            ref = str(container.get("image", ""))
            if ref == IMAGE_NAME or ref.startswith(IMAGE_NAME + ":"):
                container["image"] = image
        if obj["kind"] == "ConfigMap" and meta.get("name") == CONFIG_MAP:
            obj["data"] = {**(obj.get("data") or {}), **extra}
        if obj["kind"] == "Secret" and meta.get("name") == ADMIN_SECRET and admin_token:
            obj.pop("data", None)
            obj["stringData"] = {"token": admin_token}
        if admin_token and obj["kind"] == "Deployment" and _uses_config(obj):
            # Pods read the token and SHOP_* once, at start: a change must roll them.
            template = obj["spec"]["template"].setdefault("metadata", {})
            template.setdefault("annotations", {})[CONFIG_HASH] = _digest(admin_token, extra)
        out.append(obj)
    return sorted(out, key=_order)


def _uses_config(obj: dict[str, Any]) -> bool:
    return any(ref.get("configMapRef", {}).get("name") == CONFIG_MAP
               for c in _containers(obj) for ref in c.get("envFrom", []))


def _digest(token: str, extra: Mapping[str, str]) -> str:
    import hashlib

    text = json.dumps({"token": token, "config": dict(extra)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _order(obj: dict[str, Any]) -> int:
    kind = obj["kind"]
    return KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj.get("spec", {}).get("template", {}).get("spec", {})
    return list(spec.get("containers", [])) + list(spec.get("initContainers", []))


def stack_objects(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the backend creates and deletes: the stack, not chaosctl's own RBAC objects
    (label part-of: chaosctl), which an administrator applies once (stack/k8s/rbac)."""
    return [o for o in objects if o["kind"] == "Namespace" or
            (o["metadata"].get("labels") or {}).get(PART_OF_KEY) == PART_OF_VALUE]


def deployments(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}

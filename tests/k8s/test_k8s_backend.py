"""chaosctl's kubernetes backend end to end, driven through the CLI as a user would, inside the
test cluster's network namespace (where 127.0.0.1 is the cluster's and nothing leaves it):
`stack up`, `health`, `inject service-down payments`, `diagnose` finds it, `remediate
service-down` recovers it, `stack scale inventory=3` (3 Ready pods, orders still placed),
`stack kill orders` + `stack start orders` (new pods), `stack restart payments` (rollout),
`stack down --purge` (nothing of the stack left in the namespace).

chaosctl runs with a kubeconfig of the `chaosctl` ServiceAccount bound only to the Role in
stack/k8s/rbac (the namespace made by the admin first): the Role's verbs are enough for every
command, and a namespace it is not bound in is refused with the verb and resource named.
The claims are provisioned by the cluster's default StorageClass (the test cluster's in-tree
hostPath provisioner: root-owned directories, which the pods' init container hands to uid
10001).

To run against an already running test cluster instead of the session's own, set
CHAOSCTL_K8S_STATE=/path/to/its/state (the directory holding cluster.json).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.k8s.cluster import REPO, PrivateCluster

CHAOSCTL = str(Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin" / "chaosctl")
PORTS = {"gateway": 18000, "orders": 18001, "payments": 18002, "inventory": 18003,
         "notifications": 18004, "redis": 16379, "prometheus": 19090}
PART_OF = "app.kubernetes.io/part-of=chaosctl-shop"


@pytest.fixture(scope="module")
def k8s(request: pytest.FixtureRequest) -> PrivateCluster:
    state = os.environ.get("CHAOSCTL_K8S_STATE")
    if state:
        handle = PrivateCluster(Path(state))
        if not handle.netns:
            pytest.fail(f"CHAOSCTL_K8S_STATE={state} holds no cluster.json", pytrace=False)
        return handle
    return request.getfixturevalue("cluster")


class Stack:
    """The CLI of one chaosctl home against one namespace of the cluster."""

    def __init__(self, k8s: PrivateCluster, home: Path, namespace: str, kubeconfig: Path):
        self.k8s, self.namespace = k8s, namespace
        self.env = {"CHAOSCTL_HOME": str(home), "CHAOSCTL_BACKEND": "kubernetes",
                    "CHAOSCTL_KUBECONFIG": str(kubeconfig), "CHAOSCTL_NAMESPACE": namespace,
                    "CHAOSCTL_START_TIMEOUT": "120", "CHAOSCTL_K8S_IMAGE": k8s.image,
                    **{f"CHAOSCTL_{n.upper()}_PORT": str(p) for n, p in PORTS.items()}}

    def cli(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return self.k8s.run([CHAOSCTL, *args], env=self.env, timeout=timeout)

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = self.cli(*args)
        assert result.returncode == 0, (f"chaosctl {' '.join(args)} -> {result.returncode}\n"
                                        f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result

    def healthy(self, attempts: int = 30) -> None:
        """`chaosctl health` exits 0, asked again (2 s apart) while it does not yet: with
        1 s scrapes on a loaded machine, one slow /metrics answer reads as a target down
        for a moment. Not a speed check: the attempts only bound the wait."""
        import time

        result = self.cli("health")
        for _ in range(attempts):
            if result.returncode == 0:
                return
            time.sleep(2)
            result = self.cli("health")
        assert result.returncode == 0, f"chaosctl health -> {result.returncode}\n" \
            f"{result.stdout[-3000:]}\n{result.stderr[-2000:]}"

    def admin(self, *args: str) -> Any:
        result = self.k8s.kubectl(*args, "-o", "json") if args[0] == "get" else \
            self.k8s.kubectl(*args)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout) if args[0] == "get" else result.stdout

    def pods(self, service: str) -> list[dict[str, Any]]:
        items = self.admin("get", "pods", "-n", self.namespace, "-l",
                           f"app.kubernetes.io/name={service},{PART_OF}")["items"]
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    def orders(self, n: int) -> list[int]:
        """Place n orders through the gateway's loopback port; their HTTP codes."""
        code = ("import json, sys, urllib.request\n"
                "codes = []\n"
                f"for i in range({n}):\n"
                "    body = json.dumps({'customer_id': 'k8s-e2e', 'items': [{'product_id': "
                "'prod-001', 'quantity': 1, 'unit_price': 5.0}]}).encode()\n"
                f"    req = urllib.request.Request('http://127.0.0.1:{PORTS['gateway']}/orders',"
                " data=body, headers={'Content-Type': 'application/json'})\n"
                "    try:\n"
                "        codes.append(urllib.request.urlopen(req, timeout=30).status)\n"
                "    except urllib.error.HTTPError as exc:\n"
                "        codes.append(exc.code)\n"
                "print(json.dumps(codes))\n")
        result = self.k8s.run(["python3", "-c", code], timeout=300)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)


def _ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in pod.get("status", {}).get("conditions", []))


def _sa_kubeconfig(k8s: PrivateCluster, namespace: str, path: Path) -> None:
    """A kubeconfig for the chaosctl ServiceAccount (its token secret, v1.20 style)."""
    import time

    secret = ""
    for _ in range(60):  # the token controller adds the secret shortly after the SA
        out = k8s.kubectl("get", "sa", "chaosctl", "-n", namespace, "-o",
                          "jsonpath={.secrets[0].name}")
        secret = out.stdout.strip()
        if secret:
            break
        time.sleep(0.5)
    assert secret, "no token secret for the chaosctl ServiceAccount"
    data = json.loads(k8s.kubectl("get", "secret", secret, "-n", namespace, "-o",
                                  "json").stdout)["data"]
    admin = yaml.safe_load(k8s.kubeconfig.read_text())
    cluster = admin["clusters"][0]["cluster"]
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "chaosctl",
        "clusters": [{"name": "test", "cluster": cluster}],
        "users": [{"name": "chaosctl",
                   "user": {"token": base64.b64decode(data["token"]).decode()}}],
        "contexts": [{"name": "chaosctl", "context": {"cluster": "test", "user": "chaosctl",
                                                      "namespace": namespace}}]}))


@pytest.fixture(scope="module")
def stack(k8s: PrivateCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("k8s-backend")
    namespace = f"chaosctl-e2e-{uuid.uuid4().hex[:6]}"
    assert k8s.kubectl("create", "namespace", namespace).returncode == 0
    rbac = k8s.kubectl("apply", "-n", namespace, "-f",
                       str(REPO / "stack" / "k8s" / "rbac" / "chaosctl-role.yaml"))
    assert rbac.returncode == 0, rbac.stderr
    kubeconfig = base / "kubeconfig-chaosctl"
    _sa_kubeconfig(k8s, namespace, kubeconfig)
    handle = Stack(k8s, base / "home", namespace, kubeconfig)
    try:
        yield handle
    finally:
        handle.cli("stack", "down", "--purge")
        k8s.kubectl("delete", "namespace", namespace, "--wait=false")


def test_the_runbook_on_kubernetes(stack: Stack) -> None:
    up = json.loads(stack.ok("stack", "up", "--json").stdout)
    assert up["backend"] == "kubernetes"
    assert up["healthy"], [p for p in up["processes"] if p["health"] != "ok" or not p["alive"]]
    assert {s.split(".")[0] for s in up["started"]} == set(PORTS)
    again = json.loads(stack.ok("stack", "up", "--json").stdout)
    assert again["started"] == []  # a second `up` changes nothing
    stack.healthy()
    assert stack.orders(3) == [201, 201, 201]

    # service-down: every payments pod gone and held at 0 until something starts it
    stack.ok("inject", "service-down", "payments", "--for", "0")
    status = json.loads(stack.cli("stack", "status", "--json").stdout)
    payments = [p for p in status["processes"] if p["name"] == "payments"]
    assert payments and all(p["health"] == "killed" for p in payments), payments
    assert stack.pods("payments") == []
    diagnosed = stack.cli("diagnose", "--json")
    assert diagnosed.returncode == 1, diagnosed.stderr
    assert "service-down" in json.loads(diagnosed.stdout)["firing"]
    stack.ok("remediate", "service-down", "--yes")
    stack.healthy()
    assert all(_ready(p) for p in stack.pods("payments"))

    # scale: three Ready inventory pods behind the one Service; orders still go through
    stack.ok("stack", "scale", "inventory=3")
    inventory = stack.pods("inventory")
    assert len(inventory) == 3 and all(_ready(p) for p in inventory)
    assert stack.orders(6) == [201] * 6

    # kill: the pods are deleted (replaced only by `start`, as on every backend)
    before = {p["metadata"]["name"] for p in stack.pods("orders")}
    killed = stack.ok("stack", "kill", "orders")
    assert "killed" in killed.stdout
    stack.ok("stack", "start", "orders")
    after = {p["metadata"]["name"] for p in stack.pods("orders")}
    assert after and not after & before
    # restart = rollout restart: new pods again, the data (SQLite on the volume) stays
    before = {p["metadata"]["name"] for p in stack.pods("payments")}
    stack.ok("stack", "restart", "payments")
    assert not {p["metadata"]["name"] for p in stack.pods("payments")} & before
    assert stack.orders(2) == [201, 201]
    stack.healthy()
    logs = stack.ok("stack", "logs", "orders", "--tail", "5")
    assert logs.returncode == 0
    # game-day: refused at preflight, before any traffic, saying why: its integrity check
    # (double charges, lost orders) reads the databases, here SQLite in the cluster's volume
    refused = stack.cli("game-day", "service-crash")
    said = refused.stdout + refused.stderr
    assert refused.returncode != 0 and "cluster's volume" in said and "Traceback" not in said

    stack.ok("stack", "down", "--purge")
    left = stack.admin("get", "deployments,pods,services,configmaps,secrets,pvc,"
                       "serviceaccounts,roles,rolebindings", "-n", stack.namespace,
                       "-l", PART_OF)["items"]
    assert left == [], [f"{o['kind']}/{o['metadata']['name']}" for o in left]


def test_a_namespace_the_role_does_not_cover_is_refused_by_name(stack: Stack) -> None:
    result = stack.cli("stack", "--namespace", "default", "status")
    assert result.returncode == 2, result.stderr
    assert "forbidden: chaosctl may not list" in result.stderr
    assert "Traceback" not in result.stderr

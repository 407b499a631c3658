"""The test cluster itself, checked the way a user of it would: is it a working Kubernetes, and
is it sealed off from everything beyond this machine?"""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from tests.k8s.cluster import BRIDGE_IP, PrivateCluster
from tests.support import wait_for


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{result.args}\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture()
def namespace(cluster: PrivateCluster) -> Iterator[str]:
    name = f"k1-{uuid.uuid4().hex[:6]}"
    _ok(cluster.kubectl("create", "namespace", name))
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")


def test_node_is_ready_and_reports_its_version(cluster: PrivateCluster) -> None:
    node = json.loads(_ok(cluster.kubectl("get", "node", "localhost", "-o", "json")))
    ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert ready and ready[0]["status"] == "True", ready
    assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.20.2"
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("docker://")


def _pod(name: str, image: str, script: str) -> str:
    return json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "containers": [{
            "name": "main", "image": image, "imagePullPolicy": "Never",
            "command": ["python", "-c", script]}]}})


def _finished_logs(cluster: PrivateCluster, namespace: str, pod: str) -> str:
    def phase() -> str | None:
        out = cluster.kubectl("-n", namespace, "get", "pod", pod, "-o",
                              "jsonpath={.status.phase}").stdout.strip()
        return out if out in ("Succeeded", "Failed") else None

    final = wait_for(phase, timeout=120, interval=0.5, what=f"pod {pod} to finish")
    logs = _ok(cluster.kubectl("-n", namespace, "logs", pod))
    assert final == "Succeeded", f"pod {pod} {final}:\n{logs}"
    return logs


def test_a_pod_of_the_stack_image_runs_and_kubectl_logs_shows_its_output(
        cluster: PrivateCluster, namespace: str) -> None:
    marker = uuid.uuid4().hex
    script = f"import shop, sys; print('{marker}', sys.version_info[:2])"
    _ok(cluster.kubectl("-n", namespace, "apply", "-f", "-",
                        input=_pod("hello", cluster.image, script)))
    logs = _finished_logs(cluster, namespace, "hello")
    assert marker in logs and "(3, 11)" in logs


ECHO_SERVER = """
import http.server, socket
name = socket.gethostname().encode()
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(name)
http.server.HTTPServer(('0.0.0.0', 8080), Handler).serve_forever()
"""


def _echo(image: str) -> str:
    """A Deployment of two pods answering their own name on 8080, and Service echo:80."""
    labels = {"app": "echo"}
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "echo"},
        "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels}, "spec": {"containers": [{
                "name": "echo", "image": image, "imagePullPolicy": "Never",
                "command": ["python", "-c", ECHO_SERVER],
                "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}}}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo"},
               "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]}}
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": [deployment, service]})


CLIENT = r"""
import json, socket, ssl, urllib.request
sa = '/var/run/secrets/kubernetes.io/serviceaccount/'
out = {'echo_ip': socket.gethostbyname('echo'),
       'fqdn_ip': socket.gethostbyname('echo.%s.svc.cluster.local' % open(sa + 'namespace').read())}
out['answers'] = sorted({urllib.request.urlopen('http://echo/', timeout=5).read().decode()
                         for _ in range(20)})
try:
    socket.gethostbyname('example.com')
    out['outside'] = 'resolved'
except OSError as exc:
    out['outside'] = type(exc).__name__
req = urllib.request.Request('https://kubernetes.default.svc/api',
                             headers={'Authorization': 'Bearer ' + open(sa + 'token').read()})
ctx = ssl.create_default_context(cafile=sa + 'ca.crt')
out['api'] = json.loads(urllib.request.urlopen(req, context=ctx, timeout=5).read())['kind']
print(json.dumps(out))
"""


def test_pods_resolve_services_by_name_and_reach_the_api_server(
        cluster: PrivateCluster, namespace: str) -> None:
    """Cluster DNS, kube-proxy (Service -> pods on the same bridge) and the in-pod API server
    (what Prometheus' Kubernetes service discovery uses) all work from inside a pod."""
    _ok(cluster.kubectl("-n", namespace, "apply", "-f", "-",
                        input=_echo(cluster.image)))
    _ok(cluster.kubectl("-n", namespace, "rollout", "status", "deployment/echo",
                        "--timeout=120s", timeout=150))
    cluster_ip = _ok(cluster.kubectl("-n", namespace, "get", "service", "echo", "-o",
                                     "jsonpath={.spec.clusterIP}")).strip()
    pods = set(_ok(cluster.kubectl("-n", namespace, "get", "pods", "-l", "app=echo", "-o",
                                   "jsonpath={.items[*].metadata.name}")).split())
    # the default service account may read the API's discovery document (system:discovery)
    _ok(cluster.kubectl("-n", namespace, "apply", "-f", "-",
                        input=_pod("client", cluster.image, CLIENT)))
    result = json.loads(_finished_logs(cluster, namespace, "client").strip().splitlines()[-1])
    assert result["echo_ip"] == result["fqdn_ip"] == cluster_ip
    assert set(result["answers"]) <= pods and len(pods) == 2
    assert result["outside"] == "gaierror"
    assert result["api"] == "APIVersions"


def _connects(trace: str) -> list[str]:
    """The addresses of every connect() in an `strace -f -e trace=connect` output."""
    found = []
    for line in trace.splitlines():
        if "connect(" not in line:
            continue
        family = re.search(r"sa_family=(AF_\w+)", line)
        if family is None:
            found.append(f"?? {line}")
            continue
        if family.group(1) == "AF_INET":
            ip = re.search(r'inet_addr\("([^"]+)"\)', line)
            found.append(f"AF_INET {ip.group(1) if ip else '??'}")
        elif family.group(1) == "AF_INET6":
            ip = re.search(r'inet_pton\(AF_INET6, "([^"]+)"', line)
            found.append(f"AF_INET6 {ip.group(1) if ip else '??'}")
        else:
            found.append(family.group(1))
    return found


def _is_local(entry: str) -> bool:
    family, _, address = entry.partition(" ")
    if family in ("AF_UNIX", "AF_NETLINK", "AF_UNSPEC"):
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def test_kubelet_start_connects_only_to_loopback_and_unix_sockets(
        cluster: PrivateCluster) -> None:
    """strace of kubelet's connect() calls from its first instruction for its first seconds:
    the API server on 127.0.0.1, docker and dockershim sockets; no metadata address
    (169.254.169.254), no DNS server, nothing else."""
    trace = cluster.trace_done().read_text()
    connects = _connects(trace)
    assert any(c.startswith("AF_INET 127.0.0.1") for c in connects), trace[-2000:]
    assert "AF_UNIX" in connects
    assert "169.254.169.254" not in trace
    elsewhere = sorted({c for c in connects if not _is_local(c)})
    assert not elsewhere, f"kubelet connected beyond loopback: {elsewhere}"


def test_the_netns_has_only_loopback_and_the_bridge_and_no_route_out(
        cluster: PrivateCluster) -> None:
    links = json.loads(_ok(cluster.run(["ip", "-j", "link", "show"])))
    names = {link["ifname"] for link in links}
    assert "lo" in names and "docker0" in names
    assert all(n in ("lo", "docker0") or n.startswith("veth") for n in names), names
    for family in ("-4", "-6"):
        routes = json.loads(_ok(cluster.run(["ip", "-j", family, "route", "show",
                                             "table", "all"])) or "[]")
        assert not [r for r in routes if r.get("dst") == "default"], routes
    addresses = json.loads(_ok(cluster.run(["ip", "-j", "-4", "addr", "show"])))
    ips = {a["local"] for link in addresses for a in link.get("addr_info", [])}
    assert ips == {"127.0.0.1", BRIDGE_IP}, ips


def test_daemons_listen_on_loopback_except_the_documented_two(cluster: PrivateCluster) -> None:
    """Everything binds 127.0.0.1 but the API server (all netns addresses, so pods reach it)
    and the cluster DNS on the bridge address kubelet hands to pods."""
    out = _ok(cluster.run(["ss", "-H", "-lntup"]))
    api_port = cluster.info["ports"]["apiserver"]
    odd = []
    for line in out.splitlines():
        local = line.split()[4]
        host, _, port = local.rpartition(":")
        host = host.strip("[]").split("%")[0]
        if host in ("127.0.0.1", "::1") or host.startswith("127."):
            continue
        if port == str(api_port) and host in ("*", "0.0.0.0", "::"):
            continue
        if host == BRIDGE_IP and port == "53":
            continue
        odd.append(line)
    assert not odd, "listeners beyond loopback:\n" + "\n".join(odd)

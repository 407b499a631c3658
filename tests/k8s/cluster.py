"""A real one-node Kubernetes (v1.20.2) of the tests' own, sealed inside a network namespace.

    python -m tests.k8s.cluster up --state /tmp/k8s-dev     # prints and writes STATE/cluster.json
    python -m tests.k8s.cluster down --state /tmp/k8s-dev

Layout (root only; binaries from scripts/k8s-build.sh, recipe in ../shared/engines.md):

* Network namespace `chaosctl-k8s-<random>` with only `lo` up, no default route. Every daemon
  runs in it, so nothing it does can leave the machine even by mistake; its iptables rules,
  docker0, veths and net.* sysctls (ip_forward, route_localnet, bridge-nf-call-iptables) live
  and die with it.
* One private mount namespace for the daemons, held by a `sleep` process (the first PID),
  joined with `nsenter --target HOLDER --mount --net`. Not `ip netns exec` for them: that gives
  each command a mount namespace of its own, and kubelet's secret/token tmpfs volumes must be
  visible to dockerd, which bind-mounts them into containers; it also remounts /sys, which
  loses the cgroup mounts below it. In the private namespace, paths kubelet/dockershim v1.20
  use whatever the flags say (/var/lib/kubelet/device-plugins, /var/log/pods,
  /var/log/containers) are bind mounts of directories under the state dir, and the global
  kernel settings kubelet would otherwise rewrite at start (vm.overcommit_memory,
  kernel.panic, ...: `setupKernelTunables`) are bind-mounted files that already hold the
  values it wants: the host's own are never touched. The mounts of kubelet's volumes, of
  dockerd's overlays and network namespaces stay in that namespace and vanish with it.
* dockerd on STATE/docker.sock (reachable from outside the netns: build and import images with
  DOCKER_HOST=unix://STATE/docker.sock), its default bridge docker0 at 172.17.0.1/16 inside
  the netns, and the runc wrapper that clamps the negative oom_score_adj kubelet gives pod
  sandboxes (no CAP_SYS_RESOURCE here). Images: `localhost/pause:3.2` from the built `pause`
  binary, and the stack image (chaosctl.runtime.docker_image.build, offline).
* etcd + kube-apiserver + controller-manager + scheduler + kubelet (dockershim) + kube-proxy
  (iptables), kubelet always with AWS_EC2_METADATA_DISABLED=true (its in-tree AWS credential
  provider would otherwise try the cloud metadata address). Clients use
  https://127.0.0.1:PORT (STATE/kubeconfig, admin token).
* Pods reach the API server: it listens on 0.0.0.0 *inside the netns* (whose only addresses
  are 127.0.0.1 and docker0's), advertises docker0's 172.17.0.1, and keeps its endpoint
  reconciler on, so the `kubernetes` Service (10.96.0.1:443) works in pods and Prometheus can
  use Kubernetes service discovery with its service-account token. Loopback cannot be
  advertised (`may not be in the loopback range`) and with the reconciler off in-pod access is
  impossible; binding to the netns' bridge exposes nothing beyond the machine, since the netns
  has no interface that leads anywhere else.
* The node's address is docker0's (kubelet --node-ip): with none, kubelet looks for the
  default route's interface, finds none in the netns and gives the node no address at all,
  and logs/exec/port-forward fail; loopback is refused. The API server still dials the node's
  Hostname, `localhost`, where kubelet listens (127.0.0.1).
* PVCs bind: a default StorageClass `standard` on kube-controller-manager's in-tree hostPath
  provisioner (single node), whose directories (/tmp/hostpath_pv/<uuid>, a path it hard-codes)
  down() removes.
* Cluster DNS: tests/k8s/cluster_dns.py on 172.17.0.1:53 (kubelet `--cluster-dns`), Service
  names to ClusterIPs, so manifests can say `http://orders:8001` as on any cluster.
* Ports: fixed (22379-22388) inside the netns: nothing else listens there, and host-side
  free-port pickers (the ephemeral range) never hand them out to tests that bind in the netns.
* Teardown stops everything newest first, by recorded PID (checked to still be that program in
  this netns), removes the containers, deletes the netns, removes the state dir, and compares
  the host (iptables-save, links, mounts, netns list, sysctls, kubelet's well-known paths)
  with the snapshot taken before `up`: any difference fails it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tests.k8s.hoststate import HostState

REPO = Path(__file__).resolve().parents[2]
VERSION = "v1.20.2"
PAUSE_IMAGE = "localhost/pause:3.2"
BRIDGE_CIDR = "172.17.0.1/16"
BRIDGE_IP = BRIDGE_CIDR.split("/")[0]
SERVICE_CIDR = "10.96.0.0/16"
# kube-controller-manager's hostPath provisioner makes PersistentVolumes here (hard-coded);
# down() removes the cluster's own and the directory when it did not exist before.
HOSTPATH_PV = Path("/tmp/hostpath_pv")
STORAGE_CLASS = """apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubernetes.io/host-path
reclaimPolicy: Delete
volumeBindingMode: Immediate
"""
BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet",
            "kube-proxy", "kubectl", "pause")
TOOLS = {"etcd": "etcd-server", "dockerd": "docker.io", "jq": "jq", "openssl": "openssl",
         "nsenter": "util-linux", "unshare": "util-linux", "ip": "iproute2",
         "iptables-save": "iptables", "socat": "socat"}
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# What kubelet v1.20 sets at start unless the values are already there (cm.setupKernelTunables)
KERNEL_TUNABLES = {"vm/overcommit_memory": "1", "vm/panic_on_oom": "0", "kernel/panic": "10",
                   "kernel/panic_on_oops": "1", "kernel/keys/root_maxkeys": "1000000",
                   "kernel/keys/root_maxbytes": "25000000"}
RUNC_WRAPPER = r"""#!/bin/sh
# No CAP_SYS_RESOURCE here: a negative oom_score_adj (kubelet's pod sandboxes ask for -998)
# makes runc fail ("can't get final child's PID from pipe: EOF"). Clamp it to 0 on create/run.
bundle=""; prev=""; cmd=""
for a in "$@"; do
  case "$prev" in --bundle|-b) bundle="$a";; esac
  case "$a" in --bundle=*) bundle="${a#--bundle=}";; create|run) [ -z "$cmd" ] && cmd="$a";; esac
  prev="$a"
done
if [ -n "$cmd" ] && [ -n "$bundle" ] && [ -f "$bundle/config.json" ]; then
  jq -c 'if ((.process.oomScoreAdj // 0) < 0) then .process.oomScoreAdj = 0 else . end' \
    "$bundle/config.json" > "$bundle/config.json.wrap" \
    && mv "$bundle/config.json.wrap" "$bundle/config.json"
fi
exec /usr/sbin/runc "$@"
"""
# Files and directories up() makes in STATE; down() removes these and then STATE if empty.
OWNED = ("cluster.json", "pids", "READY", "host-before.json", "logs", "pki", "etcd", "docker",
         "kubelet", "dockershim", "ns", "ns-setup.sh", "ns-ready", "runc-wrap", "kubeconfig",
         "resolv.conf", "volume-plugins", "docker.sock", "dockershim.sock")

# What the cluster's dockerd may leave in the netns (/proc/PID/comm, 15 characters at most);
# any other process there was started by a user of the cluster and is left alone.
LEFTOVERS = {"containerd", "containerd-shim", "runc", "runc-wrap", "docker-proxy", "socat",
             "docker-init", "nsenter"}

Progress = Callable[[str], None]


class ClusterError(RuntimeError):
    """The cluster could not start (or stop cleanly); the message says what and where."""


def default_bin_dir() -> Path:
    explicit = os.environ.get("CHAOSCTL_K8S_BIN")
    if explicit:
        return Path(explicit)
    from chaosctl.runtime.docker_image import cache_dir

    return cache_dir() / f"k8s-{VERSION}"


def binaries_missing(bin_dir: Path) -> list[str]:
    return [b for b in BINARIES if not os.access(bin_dir / b, os.X_OK)]


def prerequisites(bin_dir: Path) -> list[str]:
    """What stops a cluster from starting here, one line each (empty: nothing)."""
    problems = []
    if os.geteuid() != 0:
        problems.append("the test cluster needs root (network namespace, dockerd, kubelet)")
    missing = binaries_missing(bin_dir)
    if missing:
        problems.append(f"Kubernetes binaries missing in {bin_dir}: {', '.join(missing)} "
                        "(run scripts/k8s-build.sh)")
    absent = sorted({pkg for tool, pkg in TOOLS.items() if shutil.which(tool) is None})
    if absent:
        problems.append(f"missing packages: {' '.join(absent)} (run scripts/engines.sh)")
    return problems


def _say(_: str) -> None:
    return None


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class PrivateCluster:
    def __init__(self, state: Path, bin_dir: Path | None = None) -> None:
        self.state = Path(state).resolve()
        self.bin_dir = bin_dir or default_bin_dir()
        self.info: dict[str, Any] = {}
        info_file = self.state / "cluster.json"
        if info_file.is_file():
            self.info = json.loads(info_file.read_text())
            self.bin_dir = Path(self.info.get("bin_dir", self.bin_dir))

    # -- what users of the cluster need -------------------------------------------------------
    @property
    def netns(self) -> str:
        return str(self.info.get("netns", ""))

    @property
    def kubeconfig(self) -> Path:
        return self.state / "kubeconfig"

    @property
    def docker_socket(self) -> Path:
        return self.state / "docker.sock"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.docker_socket}"

    @property
    def image(self) -> str:
        return str(self.info.get("image", ""))

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The environment for commands against this cluster: no proxies, its kubeconfig."""
        env = {k: v for k, v in os.environ.items()
               if not k.lower().endswith("_proxy") and not k.startswith(("KUBECONFIG",
                                                                          "DOCKER_HOST"))}
        env.update({"KUBECONFIG": str(self.kubeconfig), "DOCKER_HOST": self.docker_host})
        env.update(extra or {})
        return env

    def run(self, args: Sequence[str], env: dict[str, str] | None = None,
            timeout: float = 300, check: bool = False,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        """`args` inside the cluster's netns (ip netns exec), where 127.0.0.1 is the cluster's.
        `env` is added to self.env() (kubeconfig, docker socket, no proxies)."""
        if not self.netns:
            raise ClusterError(f"no cluster in {self.state} (cluster.json missing)")
        return subprocess.run(["ip", "netns", "exec", self.netns, *args], env=self.env(env),
                              capture_output=True, text=True, timeout=timeout, check=check,
                              input=input)

    def kubectl(self, *args: str, timeout: float = 120, check: bool = False,
                input: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.run([str(self.bin_dir / "kubectl"), "--kubeconfig", str(self.kubeconfig),
                         *args], timeout=timeout, check=check, input=input)

    def pids(self) -> list[tuple[int, str]]:
        path = self.state / "pids"
        if not path.is_file():
            return []
        rows = [line.split(maxsplit=1) for line in path.read_text().splitlines() if line.strip()]
        return [(int(pid), name) for pid, name in rows]

    # -- up ------------------------------------------------------------------------------------
    def up(self, progress: Progress = _say, build_image: bool = True,
           trace_kubelet_s: float = 0) -> dict[str, Any]:
        """Start everything; with `trace_kubelet_s`, record kubelet's connect() calls from
        its first instruction for that many seconds (strace; info["kubelet_connect_trace"])."""
        problems = prerequisites(self.bin_dir)
        if problems:
            raise ClusterError("; ".join(problems))
        if self.info.get("netns"):
            raise ClusterError(f"{self.state} already holds a cluster ({self.netns}): "
                               f"run `python -m tests.k8s.cluster down --state {self.state}`")
        started = time.monotonic()
        self.state.mkdir(parents=True, exist_ok=True)
        for sub in ("logs", "pki", "etcd", "docker", "kubelet", "dockershim", "ns/var-log",
                    "ns/var-lib", "ns/sysctl", "volume-plugins"):
            (self.state / sub).mkdir(parents=True, exist_ok=True)
        HostState.now().save(self.state / "host-before.json")
        ports = dict(zip(("etcd", "etcd_peer", "etcd_metrics", "apiserver", "kcm", "scheduler",
                          "kubelet", "kubelet_healthz", "proxy_metrics", "proxy_healthz"),
                         range(22379, 22389), strict=True))
        self.info = {"netns": f"chaosctl-k8s-{uuid.uuid4().hex[:8]}", "state": str(self.state),
                     "bin_dir": str(self.bin_dir), "version": VERSION, "ports": ports,
                     "kubeconfig": str(self.kubeconfig), "docker_socket": str(self.docker_socket),
                     "docker_host": self.docker_host, "pause_image": PAUSE_IMAGE,
                     "bridge_ip": BRIDGE_IP, "cluster_dns": BRIDGE_IP,
                     "api_server": f"https://127.0.0.1:{ports['apiserver']}",
                     "in_pod_api_server": "https://kubernetes.default.svc (10.96.0.1:443)",
                     "kubectl": str(self.bin_dir / "kubectl"), "timings": {}}
        self._save()
        timings = self.info["timings"]

        def step(name: str, t0: float) -> None:
            timings[name] = round(time.monotonic() - t0, 1)
            progress(f"{name}: {timings[name]}s")

        t0 = time.monotonic()
        subprocess.run(["ip", "netns", "add", self.netns], check=True, capture_output=True)
        subprocess.run(["ip", "-n", self.netns, "link", "set", "lo", "up"], check=True,
                       capture_output=True)
        self._start_holder()
        step("netns_s", t0)
        t0 = time.monotonic()
        self._start_dockerd()
        step("dockerd_s", t0)
        builder = _ImageBuilder(self, progress if build_image else None)
        builder.start()
        t0 = time.monotonic()
        self._start_control_plane()
        step("control_plane_s", t0)
        t0 = time.monotonic()
        self._start_node(trace_kubelet_s)
        step("node_ready_s", t0)
        t0 = time.monotonic()
        builder.join()
        if builder.error is not None:
            raise ClusterError(f"images: {builder.error}")
        self.info.update(builder.result)
        step("images_wait_s", t0)
        timings["up_s"] = round(time.monotonic() - started, 1)
        self._save()
        (self.state / "READY").write_text(json.dumps(self.info, indent=2) + "\n")
        return self.info

    def _save(self) -> None:
        (self.state / "cluster.json").write_text(json.dumps(self.info, indent=2) + "\n")

    def _record(self, pid: int, name: str) -> None:
        with open(self.state / "pids", "a") as fh:
            fh.write(f"{pid} {name}\n")

    def _daemon_env(self) -> dict[str, str]:
        # a clean environment: no proxy settings, and never kubelet without this variable
        return {"PATH": PATH, "HOME": "/root", "AWS_EC2_METADATA_DISABLED": "true"}

    def _start_holder(self) -> None:
        ns_dir = self.state / "ns"
        lines = ["#!/bin/sh", "set -e",
                 f"mount --bind {ns_dir}/var-log /var/log",
                 f"mount --bind {ns_dir}/var-lib /var/lib"]
        for name, value in KERNEL_TUNABLES.items():
            copy = ns_dir / "sysctl" / name.replace("/", ".")
            copy.write_text(value + "\n")
            lines.append(f"mount --bind {copy} /proc/sys/{name}")
        lines += [f"touch {self.state}/ns-ready", "exec sleep infinity"]
        script = self.state / "ns-setup.sh"
        script.write_text("\n".join(lines) + "\n")
        log = open(self.state / "logs" / "holder.log", "ab")
        proc = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{self.netns}", "unshare", "--mount",
             "--propagation", "private", "/bin/sh", str(script)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            env=self._daemon_env())
        self._record(proc.pid, "holder")
        self.info["holder_pid"] = proc.pid
        self._wait(lambda: (self.state / "ns-ready").exists(), 10, "the mount namespace",
                   lambda: proc.poll() is None, "holder")

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> int:
        holder = self.info["holder_pid"]
        log = open(self.state / "logs" / f"{name}.log", "ab")
        proc = subprocess.Popen(
            ["nsenter", f"--target={holder}", "--mount", "--net", "--", *cmd],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            env={**self._daemon_env(), **(env or {})}, cwd="/")
        self._record(proc.pid, name)
        return proc.pid

    def _wait(self, ready: Callable[[], bool], timeout: float, what: str,
              alive: Callable[[], bool] | None = None, log: str = "") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                if ready():
                    return
            if alive is not None and not alive():
                raise ClusterError(f"{what}: the process exited\n{self._tail(log)}")
            time.sleep(0.25)
        raise ClusterError(f"{what} not ready after {timeout:g}s\n{self._tail(log)}")

    def _tail(self, name: str, lines: int = 12) -> str:
        if not name:
            return ""
        path = self.state / "logs" / f"{name}.log"
        try:
            text = path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return f"(no log {path})"
        return f"--- {path} (last {lines} lines) ---\n" + "\n".join(text)

    def _in_netns(self, cmd: list[str], timeout: float = 15) -> subprocess.CompletedProcess[str]:
        """A quick probe in the netns only (nsenter: no sysfs remount, no mount namespace)."""
        return subprocess.run(["nsenter", f"--net=/run/netns/{self.netns}", *cmd],
                              capture_output=True, text=True, timeout=timeout,
                              env=self._daemon_env())

    def _start_dockerd(self) -> None:
        wrapper = self.state / "runc-wrap"
        wrapper.write_text(RUNC_WRAPPER)
        wrapper.chmod(0o755)
        d = self.state / "docker"
        pid = self._spawn("dockerd", [
            "dockerd", "--host", self.docker_host, "--data-root", str(d / "data"),
            "--exec-root", str(d / "exec"), "--pidfile", str(d / "dockerd.pid"),
            "--bip", BRIDGE_CIDR, "--add-runtime", f"runc-wrap={wrapper}",
            "--default-runtime", "runc-wrap"])
        self._wait(self._docker_ping, 60, "dockerd", lambda: _alive(pid), "dockerd")

    def _docker_ping(self) -> bool:
        import http.client
        import socket

        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(2)
        try:
            sock.connect(str(self.docker_socket))
            conn = http.client.HTTPConnection("localhost")
            conn.sock = sock
            conn.request("GET", "/_ping")
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            sock.close()

    def _start_control_plane(self) -> None:
        s, p, b = self.state, self.info["ports"], self.bin_dir
        pki = s / "pki"
        subprocess.run(["openssl", "genrsa", "-out", str(pki / "sa.key"), "2048"], check=True,
                       capture_output=True)
        subprocess.run(["openssl", "rsa", "-in", str(pki / "sa.key"), "-pubout", "-out",
                        str(pki / "sa.pub")], check=True, capture_output=True)
        # The API server's own self-signed certificate names only the advertised and the
        # Service address; clients here dial 127.0.0.1. One self-signed certificate for all.
        (pki / "apiserver").mkdir(exist_ok=True)
        sans = ",".join([f"IP:{ip}" for ip in ("127.0.0.1", BRIDGE_IP, "10.96.0.1")]
                        + [f"DNS:{n}" for n in ("localhost", "kubernetes", "kubernetes.default",
                                                "kubernetes.default.svc",
                                                "kubernetes.default.svc.cluster.local")])
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
                        "30", "-subj", "/CN=chaosctl-k8s-apiserver", "-addext",
                        f"subjectAltName={sans}", "-keyout", str(pki / "apiserver" / "tls.key"),
                        "-out", str(pki / "apiserver" / "apiserver.crt")],
                       check=True, capture_output=True)
        token = os.urandom(16).hex()
        (pki / "token").write_text(token + "\n")
        (pki / "tokens.csv").write_text(f"{token},admin,admin,system:masters\n")
        for f in ("sa.key", "token", "tokens.csv", "apiserver/tls.key"):
            (pki / f).chmod(0o600)
        etcd_url = f"http://127.0.0.1:{p['etcd']}"
        peer = f"http://127.0.0.1:{p['etcd_peer']}"
        etcd = self._spawn("etcd", [
            "etcd", "--name", "k8s", "--data-dir", str(s / "etcd"),
            "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"k8s={peer}",
            "--listen-metrics-urls", f"http://127.0.0.1:{p['etcd_metrics']}"])
        api = self._spawn("kube-apiserver", [
            str(b / "kube-apiserver"), f"--etcd-servers={etcd_url}",
            # 0.0.0.0 inside the netns = 127.0.0.1 + docker0: pods reach the API (docstring)
            "--bind-address=0.0.0.0", f"--advertise-address={BRIDGE_IP}",
            f"--secure-port={p['apiserver']}",
            f"--tls-cert-file={pki / 'apiserver' / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver' / 'tls.key'}",
            f"--token-auth-file={pki / 'tokens.csv'}", "--authorization-mode=Node,RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}", "--allow-privileged=true"])
        self._wait(lambda: self._in_netns([
            "curl", "-sk", "-m", "2", "-H", f"Authorization: Bearer {token}",
            f"https://127.0.0.1:{p['apiserver']}/readyz"]).stdout.strip() == "ok",
            90, "kube-apiserver", lambda: _alive(api) and _alive(etcd), "kube-apiserver")
        ca = pki / "apiserver" / "apiserver.crt"
        self.kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: chaosctl-k8s\n  cluster:\n"
            f"    server: https://127.0.0.1:{p['apiserver']}\n"
            f"    certificate-authority: {ca}\n"
            "users:\n- name: admin\n  user:\n"
            f"    token: {token}\n"
            "contexts:\n- name: chaosctl-k8s\n  context:\n    cluster: chaosctl-k8s\n"
            "    user: admin\n    namespace: default\ncurrent-context: chaosctl-k8s\n")
        self.kubeconfig.chmod(0o600)
        kc = str(self.kubeconfig)
        common = [f"--kubeconfig={kc}", f"--authentication-kubeconfig={kc}",
                  f"--authorization-kubeconfig={kc}", "--leader-elect=false", "--port=0",
                  "--bind-address=127.0.0.1"]
        self._spawn("kube-controller-manager", [
            str(b / "kube-controller-manager"), *common, f"--secure-port={p['kcm']}",
            f"--service-account-private-key-file={pki / 'sa.key'}", f"--root-ca-file={ca}",
            f"--cert-dir={pki / 'kcm'}", "--use-service-account-credentials=false",
            # PVCs: the in-tree single-node provisioner (directories under HOSTPATH_PV)
            "--enable-hostpath-provisioner=true"])
        self._spawn("kube-scheduler", [
            str(b / "kube-scheduler"), *common, f"--secure-port={p['scheduler']}",
            f"--cert-dir={pki / 'scheduler'}"])
        self._spawn("cluster-dns", [
            sys.executable, str(Path(__file__).with_name("cluster_dns.py")),
            "--listen", f"{BRIDGE_IP}:53", "--api", f"https://127.0.0.1:{p['apiserver']}",
            "--ca", str(ca), "--token-file", str(pki / "token")])

    def _start_node(self, trace_s: float = 0) -> None:
        s, p, b = self.state, self.info["ports"], self.bin_dir
        kc = str(self.kubeconfig)
        (s / "resolv.conf").write_text("nameserver 127.0.0.1\n")
        # Traced: the shell stops itself before exec'ing kubelet, strace attaches, and only
        # then does it go on, so the trace starts at kubelet's first instruction.
        stop_first = ["/bin/sh", "-c", 'kill -STOP $$; exec "$@"', "kubelet"] if trace_s else []
        kubelet = self._spawn("kubelet", [
            *stop_first, str(b / "kubelet"), f"--kubeconfig={kc}", "--container-runtime=docker",
            f"--docker-endpoint={self.docker_host}",
            f"--container-runtime-endpoint=unix://{s / 'dockershim.sock'}",
            f"--experimental-dockershim-root-directory={s / 'dockershim'}",
            f"--pod-infra-container-image={PAUSE_IMAGE}", f"--root-dir={s / 'kubelet'}",
            f"--cert-dir={s / 'pki' / 'kubelet'}", "--hostname-override=localhost",
            # Without it kubelet looks for the default route's interface (there is none in
            # the netns) and gives the node no address at all, not even its Hostname: then
            # logs/exec/port-forward fail ("no preferred addresses found"). Loopback is
            # refused; docker0's address is this node's own. The API server still dials
            # the Hostname, localhost, first.
            f"--node-ip={BRIDGE_IP}",
            "--address=127.0.0.1", f"--port={p['kubelet']}",
            "--healthz-bind-address=127.0.0.1", f"--healthz-port={p['kubelet_healthz']}",
            "--read-only-port=0", "--fail-swap-on=false", "--cgroup-driver=cgroupfs",
            "--cgroups-per-qos=false", "--enforce-node-allocatable=",
            "--image-gc-high-threshold=100", "--image-gc-low-threshold=99", "--eviction-hard=",
            "--oom-score-adj=0", f"--resolv-conf={s / 'resolv.conf'}",
            f"--cluster-dns={BRIDGE_IP}", "--cluster-domain=cluster.local",
            f"--volume-plugin-dir={s / 'volume-plugins'}"],
            env={"AWS_EC2_METADATA_DISABLED": "true"})
        if trace_s:
            self._trace(kubelet, trace_s)
        self._spawn("kube-proxy", [
            str(b / "kube-proxy"), f"--kubeconfig={kc}", "--proxy-mode=iptables",
            "--hostname-override=localhost", "--bind-address=127.0.0.1",
            f"--metrics-bind-address=127.0.0.1:{p['proxy_metrics']}",
            f"--healthz-bind-address=127.0.0.1:{p['proxy_healthz']}",
            "--conntrack-max-per-core=0", "--conntrack-tcp-timeout-established=0",
            "--conntrack-tcp-timeout-close-wait=0", "--nodeport-addresses=127.0.0.0/8",
            "--cluster-cidr=172.17.0.0/16"])

        def node_ready() -> bool:
            out = self.kubectl("get", "node", "localhost", "-o",
                               "jsonpath={.status.conditions[?(@.type=='Ready')].status}")
            return out.stdout.strip() == "True"

        self._wait(node_ready, 120, "node localhost Ready", lambda: _alive(kubelet), "kubelet")

        def default_sa() -> bool:  # pods cannot be created before the token controller ran
            out = self.kubectl("get", "sa", "default", "-o", "jsonpath={.secrets[0].name}")
            return bool(out.stdout.strip())

        self._wait(default_sa, 60, "the default service account's token",
                   log="kube-controller-manager")
        made = self.kubectl("apply", "-f", "-", input=STORAGE_CLASS)
        if made.returncode != 0:
            raise ClusterError(f"default StorageClass: {made.stderr.strip()}")

    def _trace(self, pid: int, seconds: float) -> None:
        self._wait(lambda: Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                   == "T", 10, "kubelet's stopped shell", lambda: _alive(pid), "kubelet")
        out = self.state / "logs" / "kubelet-connect.strace"
        strace = subprocess.Popen(
            ["strace", "-f", "--seccomp-bpf", "-e", "trace=connect", "-o", str(out),
             "-p", str(pid)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(self.state / "logs" / "strace.log", "ab"), start_new_session=True)
        self._record(strace.pid, "strace")
        # strace says it attached on stderr; the trace file exists once it has
        self._wait(lambda: "attached" in (self.state / "logs" / "strace.log").read_text(),
                   10, "strace", lambda: strace.poll() is None, "strace")
        os.kill(pid, signal.SIGCONT)
        self.info["kubelet_connect_trace"] = str(out)
        self.info["kubelet_trace_s"] = seconds

        def detach() -> None:  # SIGINT: strace detaches and kubelet runs on, untraced
            time.sleep(seconds)
            if strace.poll() is None:
                strace.send_signal(signal.SIGINT)
                strace.wait()

        threading.Thread(target=detach, daemon=True).start()
        self._strace = strace

    def trace_done(self, timeout: float = 120) -> Path:
        """Wait for the kubelet trace to be complete (strace detached); its path."""
        strace = getattr(self, "_strace", None)
        if strace is not None:
            strace.wait(timeout=timeout)
        return Path(self.info["kubelet_connect_trace"])

    # -- down ----------------------------------------------------------------------------------
    def down(self, progress: Progress = _say) -> list[str]:
        """Stop and remove everything; returns the host differences (empty: as found)."""
        notes: list[str] = []
        t0 = time.monotonic()
        netns = self.netns
        ns_inode = _inode(f"/run/netns/{netns}") if netns else None
        pids = self.pids()
        volumes = self._hostpath_volumes()
        docker_alive = False
        for pid, name in reversed(pids):
            if name == "dockerd":
                docker_alive = _alive(pid)
                self._remove_containers(notes)
            self._stop(pid, name, ns_inode, notes)
        if not docker_alive and any(name == "dockerd" for _, name in pids):
            notes.append("dockerd was not running at teardown")
        progress(f"processes stopped: {time.monotonic() - t0:.1f}s")
        if netns and ns_inode is not None:
            out = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True)
            for word in out.stdout.split():
                with contextlib.suppress(ValueError, ProcessLookupError):
                    pid = int(word)
                    if _comm(pid) in LEFTOVERS:
                        notes.append(f"killed leftover {_comm(pid)} ({pid}) in {netns}")
                        os.kill(pid, signal.SIGKILL)
                    else:  # someone else's command run in the netns: theirs to stop
                        notes.append(f"left alone: {_comm(pid)} ({pid}), not started by the "
                                     f"cluster, still in {netns}")
            subprocess.run(["ip", "netns", "delete", netns], capture_output=True)
        for path in volumes:
            shutil.rmtree(path, ignore_errors=True)
        if HOSTPATH_PV.is_dir() and not any(HOSTPATH_PV.iterdir()):
            with contextlib.suppress(OSError):
                before = json.loads((self.state / "host-before.json").read_text())
                if not before["paths"].get(str(HOSTPATH_PV)):
                    HOSTPATH_PV.rmdir()
        for target in _mounts_under(self.state):  # none expected: the daemons' are private
            subprocess.run(["umount", "-l", target], capture_output=True)
            notes.append(f"unmounted {target} on the host")
        before_file = self.state / "host-before.json"
        differences: list[str] = []
        if before_file.is_file():
            before = HostState.load(before_file)
            differences = before.differences(HostState.now(), own_netns=netns)
        progress(f"netns deleted, host compared: {time.monotonic() - t0:.1f}s")
        for name in OWNED:
            path = self.state / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.state.rmdir()
        progress(f"state removed: {time.monotonic() - t0:.1f}s")
        for line in notes:
            progress(line)
        self.info = {}
        return differences

    def _hostpath_volumes(self) -> list[Path]:
        """This cluster's provisioned volume directories (asked while the API is up)."""
        if not self.netns or not self.kubeconfig.is_file():
            return []
        try:
            out = self.kubectl("get", "pv", "-o", "jsonpath={.items[*].spec.hostPath.path}",
                               timeout=20)
        except subprocess.TimeoutExpired:
            return []
        return [Path(p) for p in out.stdout.split()
                if Path(p).parent == HOSTPATH_PV and ".." not in p]

    def _stop(self, pid: int, name: str, ns_inode: int | None, notes: list[str]) -> None:
        if not _alive(pid):
            return
        if ns_inode is not None and _inode(f"/proc/{pid}/ns/net") != ns_inode:
            notes.append(f"{name} ({pid}): not in the cluster's netns any more, left alone")
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        if _alive(pid):
            notes.append(f"{name} ({pid}) ignored SIGTERM for 20s: killed")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)

    def _remove_containers(self, notes: list[str]) -> None:
        if not self._docker_ping():
            return
        import docker

        try:
            client = docker.DockerClient(base_url=self.docker_host, timeout=60)
            for container in client.containers.list(all=True):
                with contextlib.suppress(Exception):
                    container.remove(force=True)
        except Exception as exc:  # noqa: BLE001 - teardown reports and goes on
            notes.append(f"removing containers: {exc}")


class _ImageBuilder(threading.Thread):
    """Imports the pause image and builds the stack image while the control plane starts."""

    def __init__(self, cluster: PrivateCluster, progress: Progress | None) -> None:
        super().__init__(daemon=True)
        self.cluster, self.progress = cluster, progress
        self.error: Exception | None = None
        self.result: dict[str, Any] = {}

    def run(self) -> None:
        try:
            import docker

            client = docker.DockerClient(base_url=self.cluster.docker_host, timeout=900)
            t0 = time.monotonic()
            pause = (self.cluster.bin_dir / "pause").read_bytes()
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as tar:
                info = tarfile.TarInfo("pause")
                info.size, info.mode = len(pause), 0o755
                tar.addfile(info, io.BytesIO(pause))
            repo, tag = PAUSE_IMAGE.rsplit(":", 1)
            client.api.import_image_from_data(buf.getvalue(), repository=repo, tag=tag,
                                              changes=['ENTRYPOINT ["/pause"]'])
            self.result["timings_pause_s"] = round(time.monotonic() - t0, 1)
            if self.progress is None:
                return
            from chaosctl.runtime import docker_image

            t0 = time.monotonic()
            built = docker_image.build(client, lambda line: None)
            self.result["image"] = docker_image.IMAGE
            self.result["image_build"] = built
            self.progress(f"image {docker_image.IMAGE}: {time.monotonic() - t0:.1f}s")
        except Exception as exc:  # noqa: BLE001 - reported by up()
            self.error = exc


def _inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def _mounts_under(path: Path) -> list[str]:
    found = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        target = line.split()[1].replace("\\040", " ")
        if target == str(path) or target.startswith(f"{path}/"):
            found.append(target)
    return sorted(found, key=len, reverse=True)


# -- CLI ---------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.k8s.cluster",
                                     description="A one-node Kubernetes in a network namespace.")
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--state", type=Path, required=True, help="state directory")
    parser.add_argument("--bin", type=Path, default=None,
                        help="Kubernetes binaries (default: the k8s-build.sh cache)")
    parser.add_argument("--no-image", action="store_true",
                        help="skip the stack image (the pause image is always imported)")
    parser.add_argument("--keep-on-failure", action="store_true",
                        help="leave a half-started cluster up for debugging")
    args = parser.parse_args(argv)
    cluster = PrivateCluster(args.state, args.bin)

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if args.command == "status":
        if not cluster.netns:
            print(f"no cluster in {args.state}", file=sys.stderr)
            return 1
        dead = [f"{name} ({pid})" for pid, name in cluster.pids() if not _alive(pid)]
        print(json.dumps({**cluster.info, "dead": dead}, indent=2))
        return 1 if dead else 0
    if args.command == "down":
        if not cluster.netns and not (args.state / "pids").exists():
            print(f"no cluster in {args.state}", file=sys.stderr)
            return 0
        started = time.monotonic()
        differences = cluster.down(say)
        say(f"down in {time.monotonic() - started:.1f}s")
        for line in differences:
            print(f"host changed: {line}", file=sys.stderr)
        return 1 if differences else 0
    problems = prerequisites(cluster.bin_dir)
    if problems:
        for line in problems:
            print(f"cannot start the cluster: {line}", file=sys.stderr)
        return 2
    if cluster.netns:
        print(f"{args.state} already holds a cluster ({cluster.netns}); run down first",
              file=sys.stderr)
        return 2
    try:
        info = cluster.up(say, build_image=not args.no_image)
    except (ClusterError, OSError, subprocess.SubprocessError) as exc:
        print(f"cluster up failed: {exc}", file=sys.stderr)
        if not args.keep_on_failure:
            for line in cluster.down(say):
                print(f"host changed: {line}", file=sys.stderr)
        return 1
    print(f"kubeconfig:    {info['kubeconfig']}")
    print(f"netns:         {info['netns']}   (ip netns exec {info['netns']} <command>)")
    print(f"docker socket: {info['docker_socket']}   (DOCKER_HOST={info['docker_host']})")
    print(f"image:         {info.get('image', '(not built: --no-image)')}")
    print(f"api server:    {info['api_server']} (inside the netns)")
    print(f"cluster.json:  {cluster.state / 'cluster.json'}")
    print(f"up in {info['timings']['up_s']}s: {json.dumps(info['timings'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

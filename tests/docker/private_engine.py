"""A Docker Engine of the tests' own: dockerd on a private socket, data root and exec root under
a temp dir, started and stopped by PID, leaving the machine as it found it.

It runs with `--iptables=false --ip-forward=false --ip-masq=false --bridge=none`: no docker0
bridge, no iptables chains, `net.ipv4.ip_forward` untouched, and no NAT, so containers reach
only each other inside the networks the tests create (Docker's DNS works without iptables);
published ports are served on 127.0.0.1 by docker-proxy. Its networks come from a /16 under
10.0.0.0/8 that no route of the machine uses yet (`--default-address-pool`), not from
172.17.0.0/16: two such engines at once (the tests and benchmarks/backends.py, say) or a
system dockerd would otherwise put bridges with the same subnet on the host, and the host's
traffic to published ports would reach only one of them. Teardown removes what it created
anyway (containers, networks, volumes, then bridges and mounts left under the temp dir) and
checks iptables, links, mounts and the two sysctls against the state before the start.
Also used by benchmarks/backends.py.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import iptables_rules

SYSCTLS = ("/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv4/conf/all/route_localnet")


class EngineStartError(RuntimeError):
    pass


def _links() -> set[str]:
    return {p.name for p in Path("/sys/class/net").iterdir()}


def _mounts_under(path: Path) -> list[str]:
    found = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        target = line.split()[1].replace("\\040", " ")
        if target == str(path) or target.startswith(f"{path}/"):
            found.append(target)
    return found


def free_address_pool() -> str:
    """A 10.x.0.0/16 (x in 200-249) that overlaps no IPv4 route of the machine."""
    out = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True,
                         text=True).stdout
    used = []
    for line in out.splitlines():
        word = line.split()[0] if line.split() else ""
        if word in ("local", "broadcast", "unreachable", "blackhole") and len(line.split()) > 1:
            word = line.split()[1]
        with contextlib.suppress(ValueError):
            used.append(ipaddress.ip_network(word, strict=False))
    candidates = [ipaddress.ip_network(f"10.{x}.0.0/16") for x in range(200, 250)]
    free = [c for c in candidates if not any(c.overlaps(u) for u in used if u.prefixlen)]
    if not free:
        raise EngineStartError("no free 10.x.0.0/16 (x in 200-249) for the engine's networks")
    return str(random.choice(free))


@dataclass
class MachineState:
    links: set[str]
    iptables: str
    sysctls: dict[str, str]

    @classmethod
    def now(cls) -> MachineState:
        return cls(_links(), iptables_rules(), {p: Path(p).read_text() for p in SYSCTLS})


@dataclass
class PrivateEngine:
    root: Path
    pid: int = 0
    before: MachineState | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def log(self) -> Path:
        return self.root / "dockerd.log"

    def start(self, timeout: float = 30.0) -> None:
        dockerd = shutil.which("dockerd")
        if dockerd is None:
            raise EngineStartError("dockerd is not installed: run scripts/engines.sh "
                                   "(apt-get install docker.io debootstrap docker-compose)")
        if os.geteuid() != 0:
            raise EngineStartError("a private dockerd needs root")
        self.before = MachineState.now()
        cmd = [dockerd, "--host", self.url, "--data-root", str(self.root / "data"),
               "--exec-root", str(self.root / "exec"), "--pidfile", str(self.root / "dockerd.pid"),
               "--iptables=false", "--ip-forward=false", "--ip-masq=false", "--bridge=none",
               "--default-address-pool", f"base={free_address_pool()},size=24"]
        with open(self.log, "ab") as out:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                    start_new_session=True)
        self.pid = proc.pid
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise EngineStartError(f"dockerd exited with {proc.returncode}:\n{self._tail()}")
            if self.ping():
                return
            time.sleep(0.1)
        self.stop()
        raise EngineStartError(f"dockerd did not answer within {timeout:g}s:\n{self._tail()}")

    def ping(self) -> bool:
        import http.client
        import socket

        class UnixConnection(http.client.HTTPConnection):
            def connect(inner) -> None:  # noqa: N805 - http.client's own shape
                inner.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                inner.sock.settimeout(2)
                inner.sock.connect(str(self.socket))

        try:
            conn = UnixConnection("localhost")
            conn.request("GET", "/_ping")
            return conn.getresponse().status == 200
        except (OSError, urllib.error.URLError, http.client.HTTPException):
            return False

    def _tail(self) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])
        except OSError:
            return "(no log)"

    def _remove_everything(self) -> None:
        import docker

        try:
            client = docker.DockerClient(base_url=self.url, timeout=60)
            for c in client.containers.list(all=True):
                with contextlib.suppress(Exception):
                    c.remove(force=True)
            for n in client.networks.list():
                if n.name not in ("bridge", "host", "none"):
                    with contextlib.suppress(Exception):
                        n.remove()
            client.volumes.prune()
        except Exception as exc:  # noqa: BLE001 - teardown reports, never hides the rest
            self.problems.append(f"cleaning the engine: {exc}")

    def stop(self) -> None:
        """Everything off, by our PID only; then put back what dockerd may have changed."""
        if self.pid and self.ping():
            self._remove_everything()
        if self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and _alive(self.pid):
                time.sleep(0.1)
            if _alive(self.pid):
                self.problems.append(f"dockerd {self.pid} ignored SIGTERM; killed")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
            self.pid = 0
        self._restore()

    def _restore(self) -> None:
        for target in sorted(_mounts_under(self.root), key=len, reverse=True):
            subprocess.run(["umount", "-l", target], capture_output=True)
        if self.before is None:
            return
        for link in _links() - self.before.links:  # bridges/veths dockerd left behind
            subprocess.run(["ip", "link", "delete", link], capture_output=True)
            self.problems.append(f"removed leftover link {link}")
        for path, value in self.before.sysctls.items():
            if Path(path).read_text() != value:
                Path(path).write_text(value)
                self.problems.append(f"restored {path} to {value.strip()}")
        if iptables_rules() != self.before.iptables:
            self.problems.append("iptables rules differ from before the engine started")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def start_private_engine() -> PrivateEngine:
    engine = PrivateEngine(Path(tempfile.mkdtemp(prefix="chaosctl-dockerd-", dir="/tmp")))
    engine.start()
    return engine


def remove_root(engine: PrivateEngine) -> None:
    if not _mounts_under(engine.root):
        shutil.rmtree(engine.root, ignore_errors=True)

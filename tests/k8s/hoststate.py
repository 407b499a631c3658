"""What a test cluster could change on the host, as a snapshot to compare before and after.

The cluster runs inside its own network namespace and its own mount namespace, so none of this
should move; the teardown proves it. Other engineers' or tests' own activity on the same host
(a second dockerd adding links, say) shows up here too: the diff names what changed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from tests.support import iptables_rules

# net.* of the host's netns (dockerd and kube-proxy set these inside the cluster's netns), and
# the global ones kubelet would rewrite at start (it sees private copies: cluster.py).
SYSCTLS = (
    "net/ipv4/ip_forward", "net/ipv4/conf/all/route_localnet",
    "net/bridge/bridge-nf-call-iptables", "vm/overcommit_memory", "vm/panic_on_oom",
    "kernel/panic", "kernel/panic_on_oops", "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)
# Paths kubelet/dockershim v1.20 use whatever the flags say (device-plugin socket, pod log
# links): inside the cluster's mount namespace they land on its own bind mounts instead.
PATHS = ("/var/lib/kubelet", "/var/log/pods", "/var/log/containers", "/var/lib/dockershim",
         "/var/run/dockershim.sock", "/etc/kubernetes", "/etc/cni", "/opt/cni",
         "/tmp/hostpath_pv")


def _sysctl(name: str) -> str:
    try:
        return Path("/proc/sys", name).read_text().strip()
    except OSError:
        return "(absent)"


def _mounts() -> list[str]:
    # Targets only; /run/netns itself is `ip netns`'s own shared mount point, made on the
    # first `ip netns add` on a machine and kept by design (the namespace files are checked).
    targets = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        target = line.split()[1].replace("\\040", " ")
        if target != "/run/netns":
            targets.append(target)
    return sorted(targets)


@dataclass
class HostState:
    iptables: str
    links: list[str]
    mounts: list[str]
    sysctls: dict[str, str]
    paths: dict[str, bool]
    netns: list[str]

    @classmethod
    def now(cls) -> HostState:
        netns_dir = Path("/run/netns")
        return cls(
            iptables=iptables_rules(),
            links=sorted(p.name for p in Path("/sys/class/net").iterdir()),
            mounts=_mounts(),
            sysctls={name: _sysctl(name) for name in SYSCTLS},
            paths={p: Path(p).exists() or Path(p).is_symlink() for p in PATHS},
            netns=sorted(p.name for p in netns_dir.iterdir()) if netns_dir.is_dir() else [],
        )

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: Path) -> HostState:
        return cls(**json.loads(path.read_text()))

    def differences(self, after: HostState, own_netns: str = "") -> list[str]:
        """One line per thing that is not as it was (`own_netns` must be gone by then)."""
        found: list[str] = []
        if after.iptables != self.iptables:
            before_lines, after_lines = set(self.iptables.splitlines()), set(
                after.iptables.splitlines())
            added = sorted(after_lines - before_lines)[:5]
            removed = sorted(before_lines - after_lines)[:5]
            found.append(f"host iptables changed: added {added}, removed {removed}")
        for what in ("links", "mounts", "netns"):
            old, new = set(getattr(self, what)), set(getattr(after, what))
            if new - old:
                found.append(f"host {what} added: {sorted(new - old)}")
            if old - new:
                found.append(f"host {what} removed: {sorted(old - new)}")
        if own_netns and own_netns in after.netns:
            found.append(f"network namespace {own_netns} still exists")
        for name, value in self.sysctls.items():
            if after.sysctls.get(name) != value:
                found.append(f"sysctl {name}: {value} before, {after.sysctls.get(name)} after")
        for path, existed in self.paths.items():
            if after.paths.get(path) != existed:
                found.append(f"{path}: {'existed' if existed else 'absent'} before, "
                             f"{'exists' if after.paths.get(path) else 'absent'} after")
        return found

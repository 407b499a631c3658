"""The test Kubernetes cluster (tests/k8s/cluster.py): how long `up` and `down` take, and how
much memory the control plane and node hold once it is up.

Each round starts a cluster in a fresh state dir under /tmp (its own network namespace),
reads the resident memory of every recorded process, and tears it down (which also checks
that the host is as it was). `--image` also builds the stack image into the cluster's dockerd
(rootfs and wheels from the cache), as the tests' cluster does. Needs root, the binaries of
scripts/k8s-build.sh and the packages of scripts/engines.sh.

    python benchmarks/k8s_cluster.py [--rounds 3] [--image]

Prints medians; nothing is asserted (figures vary with the machine's load).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.k8s.cluster import PrivateCluster, _alive, prerequisites  # noqa: E402


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--image", action="store_true", help="build the stack image too")
    args = parser.parse_args()
    cluster = PrivateCluster(Path(tempfile.mkdtemp(prefix="chaosctl-k8s-bench-", dir="/tmp")))
    problems = prerequisites(cluster.bin_dir)
    if problems:
        print("cannot run: " + "; ".join(problems), file=sys.stderr)
        cluster.state.rmdir()
        return 2
    ups, downs, node_ready, memory = [], [], [], []
    for n in range(args.rounds):
        if n:
            cluster = PrivateCluster(Path(tempfile.mkdtemp(prefix="chaosctl-k8s-bench-",
                                                           dir="/tmp")))
        started = time.monotonic()
        info = cluster.up(build_image=args.image)
        ups.append(time.monotonic() - started)
        node_ready.append(info["timings"]["node_ready_s"])
        memory.append({name: _rss_mb(pid) for pid, name in cluster.pids() if _alive(pid)})
        started = time.monotonic()
        differences = cluster.down()
        downs.append(time.monotonic() - started)
        if differences:
            print(f"round {n + 1}: the host changed: {differences}", file=sys.stderr)
            return 1
        print(f"round {n + 1}: up {ups[-1]:.1f}s, down {downs[-1]:.1f}s", file=sys.stderr)
    print(f"rounds: {args.rounds} (stack image {'built' if args.image else 'skipped'})")
    print(f"up (netns -> node Ready{' + image' if args.image else ''}): median "
          f"{statistics.median(ups):.1f}s (node Ready step {statistics.median(node_ready):.1f}s)")
    print(f"down (stop, remove, host compared, state removed): median "
          f"{statistics.median(downs):.1f}s")
    names = sorted({name for m in memory for name in m})
    total = 0.0
    for name in names:
        value = statistics.median(m.get(name, 0.0) for m in memory)
        total += value
        print(f"  RSS {name:<24} {value:7.0f} MB")
    print(f"  RSS total (recorded processes) {total:7.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

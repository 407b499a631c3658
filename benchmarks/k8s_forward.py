"""What the kubernetes backend's loopback ports cost: GET /health of the gateway through
chaosctl's forwarder (a new connection each time = a new port-forward through the API
server; and one kept-alive connection) against the same request straight to the pod's IP,
measured in one run. Prints medians and ratios; asserts nothing.

Run where the stack's ports and the pod network are reachable (for the test cluster: inside
its network namespace), against a stack that `chaosctl stack up --backend kubernetes` started:

    ip netns exec NETNS .venv/bin/python benchmarks/k8s_forward.py [--port 8000] [-n 60]

The pod's IP comes from the API (the same kubeconfig/namespace settings as chaosctl).
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import time

from chaosctl.config import load_settings
from chaosctl.runtime.k8s_client import connect
from chaosctl.runtime.k8s_forward import pod_is_ready


def _one(host: str, port: int, conn: http.client.HTTPConnection | None = None) -> float:
    started = time.perf_counter()
    c = conn or http.client.HTTPConnection(host, port, timeout=30)
    c.request("GET", "/health")
    response = c.getresponse()
    response.read()
    if conn is None:
        c.close()
    if response.status != 200:
        raise SystemExit(f"GET /health answered {response.status}")
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=60, help="requests per way (default 60)")
    args = parser.parse_args()
    settings = load_settings()
    cluster = connect(settings)
    pods = cluster.core().list_namespaced_pod(
        cluster.namespace, label_selector="app.kubernetes.io/name=gateway").items
    ready = [p for p in pods if pod_is_ready(p)]
    if not ready:
        raise SystemExit("no Ready gateway pod: start the stack first")
    pod_ip = ready[0].status.pod_ip
    port = settings.gateway_port
    keep = http.client.HTTPConnection(settings.host, port, timeout=30)
    ways = {
        "forwarder, new connection": lambda: _one(settings.host, port),
        "forwarder, kept alive": lambda: _one(settings.host, port, keep),
        "pod IP, new connection": lambda: _one(pod_ip, 8000),
    }
    results: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(3):  # warm up each way
        for fn in ways.values():
            fn()
    for _ in range(args.n):  # interleaved, so load on the machine hits every way alike
        for name, fn in ways.items():
            results[name].append(fn())
    base = statistics.median(results["pod IP, new connection"])
    print(f"GET /health of the gateway, {args.n} each, interleaved (median, p90):")
    for name, samples in results.items():
        med = statistics.median(samples)
        p90 = sorted(samples)[int(len(samples) * 0.9) - 1]
        print(f"  {name:<28} {med * 1000:7.1f} ms  {p90 * 1000:7.1f} ms  "
              f"x{med / base:.1f} of pod IP")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

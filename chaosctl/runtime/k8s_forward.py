"""The kubernetes backend's loopback ports: one forwarder process that listens on
127.0.0.1:<the configured port> of every process of the stack (the five services, Redis,
Prometheus) and relays each connection to a pod of that service through the API server's
port-forward (the same call as `kubectl port-forward`, `kubernetes.stream.portforward`).

Per connection, not per process: each new connection goes to a pod that is Ready right then
(round robin; a Running pod that is not Ready only when none is, so `health` still shows
the service's own "down"), so the ports survive deleted pods, scaling and rollouts, which a
`kubectl port-forward` to one pod does not. `stack up` starts it (its pid file is
run/k8s/forward.0.pid, like the local backend's processes), `stack down` stops it.

    python -m chaosctl.runtime.k8s_forward SETTINGS_JSON
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import selectors
import socket
import sys
import threading
import time
from typing import Any

from chaosctl.config import Settings
from chaosctl.runtime.base import ALL_PROCESSES
from chaosctl.runtime.docker_engine import CONTAINER_PORTS
from chaosctl.runtime.k8s_client import Cluster, connect
from chaosctl.runtime.k8s_manifests import NAME_LABEL, PART_OF

LOG = logging.getLogger("chaosctl.k8s_forward")
POD_CACHE_S = 0.5  # how long a pod list is reused before the next connection lists again
CHUNK = 65536
MAX_CONNECTIONS = 256  # open connections relayed at once, every port together


def pod_is_ready(pod: Any) -> bool:
    if pod.metadata.deletion_timestamp is not None or pod.status.phase != "Running":
        return False
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def pod_is_running(pod: Any) -> bool:
    if pod.metadata.deletion_timestamp is not None or pod.status.phase != "Running":
        return False
    return all(s.state.running is not None for s in pod.status.container_statuses or [])


class PodPicker:
    """Pods of one service, listed at most every POD_CACHE_S, handed out round robin."""

    def __init__(self, cluster: Cluster, service: str) -> None:
        self.cluster, self.service = cluster, service
        self.selector = f"{NAME_LABEL}={service},{PART_OF}"
        self._lock = threading.Lock()
        self._pods: list[str] = []
        self._listed = 0.0
        self._turn = itertools.count()

    def invalidate(self) -> None:
        with self._lock:
            self._listed = 0.0

    def pick(self, avoid: str | None = None) -> str | None:
        with self._lock:
            if time.monotonic() - self._listed > POD_CACHE_S:
                pods = self.cluster.core().list_namespaced_pod(
                    self.cluster.namespace, label_selector=self.selector).items
                ready = [p.metadata.name for p in pods if pod_is_ready(p)]
                self._pods = ready or [p.metadata.name for p in pods if pod_is_running(p)]
                self._listed = time.monotonic()
            choices = [p for p in self._pods if p != avoid] or self._pods
            if not choices:
                return None
            return choices[next(self._turn) % len(choices)]


def _open(cluster: Cluster, pod: str, port: int) -> Any:
    from kubernetes import client
    from kubernetes.stream import portforward

    # An ApiClient of its own: `portforward` swaps the client's request method for the
    # websocket one while it runs, so a shared client would send other threads' calls (the
    # pod lists) down that path too ("Missing required parameter `ports`").
    api = client.CoreV1Api(client.ApiClient(cluster.api.configuration))
    return portforward(api.connect_get_namespaced_pod_portforward, pod, cluster.namespace,
                       ports=str(port))


def relay(client: socket.socket, remote: Any) -> None:
    """Copy both ways until either side closes (HTTP and Redis never half-close)."""
    sel = selectors.DefaultSelector()
    sel.register(client, selectors.EVENT_READ, remote)
    sel.register(remote, selectors.EVENT_READ, client)
    try:
        while True:
            for key, _ in sel.select():
                data = key.fileobj.recv(CHUNK)  # type: ignore[union-attr]
                if not data:
                    return
                key.data.sendall(data)
    except OSError:
        return
    finally:
        sel.close()


def handle(cluster: Cluster, picker: PodPicker, port: int, client: socket.socket,
           slots: threading.BoundedSemaphore | None = None) -> None:
    pod = None
    try:
        for _ in range(2):  # a pod deleted since the last list: try another one once
            try:
                pod = picker.pick(avoid=pod)
            except Exception as exc:  # noqa: BLE001 - the API server: close, log one line
                LOG.warning("%s: cannot list its pods: %s", picker.service, str(exc)[:300])
                return
            if pod is None:
                return  # no pod to reach: the connection closes, the client sees it
            try:
                pf = _open(cluster, pod, port)
            except Exception as exc:  # noqa: BLE001 - any failure: this pod, not the next
                LOG.warning("%s: port-forward to %s failed: %s", picker.service, pod, exc)
                picker.invalidate()
                continue
            remote = pf.socket(port)
            remote.setblocking(True)
            try:
                relay(client, remote._socket)
            finally:
                pf.close()
            return
    finally:
        with contextlib.suppress(OSError):
            client.close()
        if slots is not None:
            slots.release()


def serve(settings: Settings) -> None:
    cluster = connect(settings)
    listeners = []
    for name in ALL_PROCESSES:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((settings.host, settings.port(name)))
        sock.listen(512)
        listeners.append((name, sock))
    LOG.warning("forwarding %s to namespace %s of %s", ", ".join(
        f"{settings.host}:{settings.port(n)}->{n}:{CONTAINER_PORTS[n]}" for n, _ in listeners),
        cluster.namespace, cluster.server)

    # One thread per open connection, MAX_CONNECTIONS at most over all ports: past that,
    # accept waits (new connections queue in the listen backlog) until one closes.
    slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def accept(name: str, sock: socket.socket) -> None:
        picker = PodPicker(cluster, name)
        while True:
            slots.acquire()
            client, _ = sock.accept()
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=handle, args=(cluster, picker, CONTAINER_PORTS[name],
                                                  client, slots), daemon=True).start()

    threads = [threading.Thread(target=accept, args=item, daemon=True) for item in listeners]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s k8s-forward %(levelname)s %(message)s")
    if len(args) != 1:
        print("usage: python -m chaosctl.runtime.k8s_forward SETTINGS_JSON", file=sys.stderr)
        return 2
    try:
        serve(Settings.from_json(args[0]))
    except OSError as exc:
        print(f"k8s-forward: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

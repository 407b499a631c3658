"""The forwarder's byte relay (k8s_forward.relay) between two real socket pairs: both
directions arrive intact, and it ends when either side closes. No cluster."""

from __future__ import annotations

import socket
import threading

import pytest

from chaosctl.runtime.k8s_forward import PodPicker, handle, relay


@pytest.mark.parametrize("closer", ["client", "remote"])
def test_relay_copies_both_ways_until_one_side_closes(closer: str) -> None:
    client_outer, client_inner = socket.socketpair()
    remote_inner, remote_outer = socket.socketpair()
    done = threading.Event()

    def run() -> None:
        relay(client_inner, remote_inner)
        done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    big = bytes(range(256)) * 1024  # larger than one recv
    client_outer.sendall(b"GET /health\r\n" + big)
    received = b""
    while len(received) < 13 + len(big):
        received += remote_outer.recv(65536)
    assert received == b"GET /health\r\n" + big
    remote_outer.sendall(b"HTTP/1.1 200 OK\r\n")
    assert client_outer.recv(100) == b"HTTP/1.1 200 OK\r\n"
    (client_outer if closer == "client" else remote_outer).close()
    thread.join(10)
    assert done.is_set()


class _NoReadyPod(PodPicker):
    """The API server's answer "no pod of this service is running", fixed."""

    def __init__(self) -> None:  # no cluster here
        self.service = "payments"

    def pick(self, avoid: str | None = None) -> str | None:
        return None


def test_a_connection_with_no_pod_to_reach_is_closed_and_gives_its_slot_back() -> None:
    slots = threading.BoundedSemaphore(1)
    slots.acquire()  # as the accept loop does before taking the connection
    outer, inner = socket.socketpair()
    handle(None, _NoReadyPod(), 8002, inner, slots)  # type: ignore[arg-type]
    outer.settimeout(5)
    assert outer.recv(10) == b""  # closed: the client sees the service is not there
    assert slots.acquire(blocking=False)  # the slot came back
    outer.close()

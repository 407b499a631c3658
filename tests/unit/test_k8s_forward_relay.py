"""The forwarder's byte relay (k8s_forward.relay) between two real socket pairs: both
directions arrive intact, and it ends when either side closes. No cluster."""

from __future__ import annotations

import socket
import threading

import pytest

from chaosctl.runtime.k8s_forward import relay


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

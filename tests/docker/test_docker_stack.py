"""Every `chaosctl stack` verb on the docker backend, against a real private dockerd."""

from __future__ import annotations

import json
import shutil
import urllib.request
import uuid
from typing import Any

import pytest

from tests.docker.conftest import DockerStack
from tests.support import wait_for

SERVICES = ("gateway", "orders", "payments", "inventory", "notifications")


def _status(stack: DockerStack) -> dict[str, Any]:
    result = stack.cli("stack", "status", "--json")
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def _healthy(stack: DockerStack) -> dict[str, Any] | None:
    status = _status(stack)
    return status if status["healthy"] else None


def _get(url: str, timeout: float = 3.0) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback
        return json.loads(resp.read())  # type: ignore[no-any-return]


def _order(stack: DockerStack) -> str:
    body = json.dumps({"customer_id": "docker-test", "items": [
        {"product_id": "prod-001", "quantity": 1, "unit_price": 9.99}]}).encode()
    req = urllib.request.Request(f"{stack.url('gateway')}/orders", data=body, method="POST",
                                 headers={"Content-Type": "application/json",
                                          "Idempotency-Key": str(uuid.uuid4())})
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback
        assert resp.status in (201, 202)
        return str(json.loads(resp.read())["order_id"])


def test_up_makes_one_compose_project_on_loopback_ports(docker_stack: DockerStack) -> None:
    status = _status(docker_stack)
    assert status["backend"] == "docker" and status["healthy"], status
    assert {p["name"] for p in status["processes"]} == {"redis", "prometheus", *SERVICES}
    containers = docker_stack.containers()
    numbers = {(c.labels["com.docker.compose.service"],
                c.labels["com.docker.compose.container-number"]) for c in containers}
    assert {(n, "1") for n in ("redis", "prometheus", "edge", *SERVICES)} <= numbers
    for c in containers:
        bindings = c.attrs["HostConfig"]["PortBindings"] or {}
        for binds in bindings.values():
            assert all(b["HostIp"] == "127.0.0.1" for b in binds), (c.name, bindings)
        if c.labels["com.docker.compose.service"] in SERVICES:
            assert not bindings, f"{c.name} publishes {bindings}: the edge owns the ports"
        networks = c.attrs["NetworkSettings"]["Networks"]
        assert list(networks) == [f"{docker_stack.project}_default"]
    health = docker_stack.cli("health", "--json")
    assert health.returncode == 0, health.stdout + health.stderr
    # A second `up` changes nothing.
    again = json.loads(docker_stack.ok("stack", "up", "--json"))
    assert again["started"] == []


def test_restart_keeps_orders_and_redis_data(docker_stack: DockerStack) -> None:
    order_id = _order(docker_stack)
    docker_stack.ok("stack", "restart", "orders", "redis", "gateway")
    wait_for(lambda: _healthy(docker_stack), timeout=60, what="healthy after restart")
    order = _get(f"{docker_stack.url('gateway')}/orders/{order_id}")
    assert order["order_id"] == order_id


def test_scale_runs_replicas_behind_the_one_port(docker_stack: DockerStack) -> None:
    docker_stack.ok("stack", "scale", "inventory=3")
    try:
        running = [c for c in docker_stack.containers("inventory") if c.status == "running"]
        assert len(running) == 3
        replicas = [p["replica"] for p in _status(docker_stack)["processes"]
                    if p["name"] == "inventory"]
        assert replicas == [0, 1, 2]
        seen = {_get(f"{docker_stack.url('inventory')}/health")["replica"] for _ in range(40)}
        assert len(seen) > 1, f"40 connections through the edge all reached replica {seen}"
    finally:
        docker_stack.ok("stack", "scale", "inventory=1")
    assert len(docker_stack.containers("inventory")) == 1


def test_kill_then_start(docker_stack: DockerStack) -> None:
    out = docker_stack.ok("stack", "kill", "payments")
    assert "killed" in out and "payments.0" in out
    entry = next(p for p in _status(docker_stack)["processes"] if p["name"] == "payments")
    assert entry["health"] == "killed" and not entry["alive"]
    # A stopped container's name is unknown to Docker's DNS, which forwards it upstream (none
    # here): the services' resolv.conf bounds that lookup (1 s, one attempt), so it fails
    # instead of holding a resolver thread for glibc's default 10 s.
    (orders,) = docker_stack.containers("orders")
    resolv = orders.exec_run(["cat", "/etc/resolv.conf"]).output.decode()
    options = next((line.split()[1:] for line in resolv.splitlines()
                    if line.startswith("options")), [])
    assert "timeout:1" in options and "attempts:1" in options, resolv
    probe = ("import socket, time\nt = time.monotonic()\ntry:\n"
             "    socket.getaddrinfo('payments', 8002)\n    print('resolved')\n"
             "except socket.gaierror as exc:\n    print('failed', exc.errno)\n"
             "print(round(time.monotonic() - t, 2))")
    lookup = orders.exec_run(["python", "-c", probe]).output.decode().split()
    print(f"[docker] lookup of a killed service's name: {' '.join(lookup)} s")
    assert lookup[0] == "failed", lookup
    docker_stack.ok("stack", "start", "payments")
    assert _healthy(docker_stack)


def test_pause_then_resume(docker_stack: DockerStack) -> None:
    docker_stack.ok("stack", "pause", "notifications")
    try:
        entry = next(p for p in _status(docker_stack)["processes"]
                     if p["name"] == "notifications")
        assert entry["paused"] and entry["health"] == "paused"
        (c,) = docker_stack.containers("notifications")
        c.reload()
        assert c.status == "paused"
    finally:
        docker_stack.ok("stack", "resume", "notifications")
    wait_for(lambda: _healthy(docker_stack), timeout=30, what="healthy after resume")


@pytest.mark.parametrize("fault,service,state", [
    ("service-down", "payments", "exited"),
    ("service-hang", "inventory", "paused"),
])
def test_inject_is_a_container_fault_and_clear_undoes_it(
        docker_stack: DockerStack, fault: str, service: str, state: str) -> None:
    docker_stack.ok("inject", fault, service, "--for", "0")
    try:
        (c,) = docker_stack.containers(service)
        c.reload()
        assert c.status == state
        status = docker_stack.cli("chaos", "status", "--json")
        assert status.returncode == 1 and status.stdout, status.stderr[-2000:]
        faults = json.loads(status.stdout)["faults"]
        assert any(f["service"] == service for f in faults), faults
    finally:
        docker_stack.ok("chaos", "clear", "--all")
    c.reload()
    assert c.status == "running"
    wait_for(lambda: _healthy(docker_stack), timeout=60, what="healthy after chaos clear")


def test_logs(docker_stack: DockerStack) -> None:
    out = docker_stack.ok("stack", "logs", "--tail", "3")
    assert "[edge.0]" not in out  # the edge is infrastructure, not a process of the stack
    assert docker_stack.ok("stack", "logs", "prometheus", "--tail", "200").strip()
    bad = docker_stack.cli("stack", "logs", "nosuch")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_down_keeps_volumes_and_purge_removes_them(engine, image) -> None:  # noqa: ANN001
    stack = DockerStack(engine)
    try:
        stack.ok("stack", "up")
        order_id = _order(stack)
        stack.ok("stack", "down")
        assert not stack.containers()
        volumes = {v.name for v in stack.client().volumes.list()}
        assert {f"{stack.project}_shopdata", f"{stack.project}_redisdata"} <= volumes
        # shopdata is $CHAOSCTL_HOME/data, where the host-side readers look (game-day)
        assert (stack.home / "data" / "orders.db").is_file()
        stack.ok("stack", "up")
        assert _get(f"{stack.url('gateway')}/orders/{order_id}")["order_id"] == order_id
    finally:
        stack.cli("stack", "down", "--purge")
    volumes = {v.name for v in stack.client().volumes.list()}
    assert not {v for v in volumes if v.startswith(f"{stack.project}_")}
    assert not list((stack.home / "data").glob("*.db"))
    shutil.rmtree(stack.home, ignore_errors=True)
    assert not stack.client().networks.list(names=[f"{stack.project}_default"])

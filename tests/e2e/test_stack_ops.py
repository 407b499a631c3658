"""`chaosctl stack` operations against the shared session stack (each test restores it)."""

from __future__ import annotations

import httpx

from tests.e2e.conftest import StackHandle
from tests.support import wait_for


def entries(status: dict, name: str) -> list[dict]:
    return [p for p in status["processes"] if p["name"] == name]


def healthy(stack: StackHandle) -> bool:
    return stack.cli("stack", "status", "--json").returncode == 0


def test_status_json_shape_and_exit_code(stack: StackHandle) -> None:
    result = stack.cli("stack", "status", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    import json

    data = json.loads(result.stdout)
    assert set(data) == {"backend", "home", "processes", "healthy"}
    assert data["backend"] == "local" and data["healthy"] is True
    names = [p["name"] for p in data["processes"]]
    assert sorted(names) == sorted(
        ["redis", "prometheus", "gateway", "orders", "payments", "inventory", "notifications"])
    for p in data["processes"]:
        assert set(p) == {"name", "replica", "pid", "port", "alive", "paused", "health"}
        assert p["alive"] and not p["paused"] and p["health"] == "ok"
        assert p["port"] == stack.settings.port(p["name"])


def test_second_up_changes_nothing(stack: StackHandle) -> None:
    before = stack.pids()
    result = stack.cli("stack", "up")
    assert result.returncode == 0, result.stderr
    assert "already running" in result.stderr
    assert stack.pids() == before


def test_restart_keeps_orders(clean_chaos: StackHandle) -> None:
    stack = clean_chaos
    order = {"customer_id": "restart-test",
             "items": [{"product_id": "prod-001", "quantity": 1, "unit_price": 5.0}]}
    created = httpx.post(f"{stack.url('gateway')}/orders", json=order, timeout=30)
    assert created.status_code == 201, created.text
    order_id = created.json()["id"]
    old_pid = stack.pids("orders")["orders.0"]

    result = stack.cli("stack", "restart", "orders")
    assert result.returncode == 0, result.stderr
    assert stack.pids("orders")["orders.0"] != old_pid

    fetched = wait_for(lambda: _get_order(stack, order_id), timeout=30, what="order after restart")
    assert fetched["id"] == order_id and fetched["customer_id"] == "restart-test"


def _get_order(stack: StackHandle, order_id: str) -> dict | None:
    response = httpx.get(f"{stack.url('gateway')}/orders/{order_id}", timeout=5)
    return response.json() if response.status_code == 200 else None


def test_scale_to_three_reaches_every_replica_then_back_to_one(stack: StackHandle) -> None:
    try:
        result = stack.cli("stack", "scale", "orders=3")
        assert result.returncode == 0, result.stderr
        pids = set(stack.pids("orders").values())
        assert len(pids) == 3
        assert {p["replica"] for p in entries(stack.status(), "orders")} == {0, 1, 2}

        seen: set[int] = set()

        def every_replica_answered() -> bool:
            # A fresh connection per request (no client pooling): the kernel spreads
            # SO_REUSEPORT connections, not requests within one connection.
            body = httpx.get(f"{stack.url('orders')}/health", timeout=5).json()
            seen.add(body["pid"])
            return seen >= pids

        wait_for(every_replica_answered, timeout=60, interval=0.01, what="all 3 orders replicas")
        assert seen == pids
    finally:
        result = stack.cli("stack", "scale", "orders=1")
    assert result.returncode == 0, result.stderr
    remaining = stack.pids("orders")
    assert list(remaining) == ["orders.0"]
    stopped = pids - set(remaining.values())
    assert len(stopped) == 2
    assert all(not _exists(pid) for pid in stopped)
    assert [p["replica"] for p in entries(stack.status(), "orders")] == [0]


def _exists(pid: int) -> bool:
    from chaosctl.runtime.procs import proc_state

    return proc_state(pid) not in (None, "Z")


def test_kill_is_visible_in_status_and_start_brings_it_back(stack: StackHandle) -> None:
    try:
        result = stack.cli("stack", "kill", "payments")
        assert result.returncode == 0, result.stderr
        status = stack.cli("stack", "status", "--json")
        assert status.returncode == 1
        (payments,) = entries(stack.status(), "payments")
        assert payments["alive"] is False and payments["health"] == "killed"
        assert payments["pid"] is None
    finally:
        result = stack.cli("stack", "start", "payments")
    assert result.returncode == 0, result.stderr
    wait_for(lambda: healthy(stack), timeout=60, what="stack healthy after start payments")


def test_pause_is_visible_in_status_and_resume_restores(stack: StackHandle) -> None:
    try:
        result = stack.cli("stack", "pause", "inventory")
        assert result.returncode == 0, result.stderr
        status = stack.cli("stack", "status")
        assert status.returncode == 1
        assert "paused" in status.stdout
        (inventory,) = entries(stack.status(), "inventory")
        assert inventory["alive"] is True and inventory["paused"] is True
        assert inventory["health"] == "paused"
    finally:
        result = stack.cli("stack", "resume", "inventory")
    assert result.returncode == 0, result.stderr
    (inventory,) = entries(stack.status(), "inventory")
    assert inventory["paused"] is False
    wait_for(lambda: healthy(stack), timeout=60, what="stack healthy after resume")


def test_logs_tail_one_service_and_all(stack: StackHandle) -> None:
    one = stack.cli("stack", "logs", "redis", "--tail", "3")
    assert one.returncode == 0, one.stderr
    lines = one.stdout.splitlines()
    assert 1 <= len(lines) <= 3
    everything = stack.cli("stack", "logs", "--tail", "1")
    assert everything.returncode == 0, everything.stderr
    assert any(line.startswith("[gateway.0]") for line in everything.stdout.splitlines())
    assert any(line.startswith("[prometheus.0]") for line in everything.stdout.splitlines())


def test_recording_rules_are_loaded(stack: StackHandle) -> None:
    def rules() -> set[str] | None:
        r = httpx.get(f"{stack.url('prometheus')}/api/v1/rules", timeout=5).json()
        names = {rule["name"] for g in r["data"]["groups"] for rule in g["rules"]}
        return names or None

    assert {"order_success_rate", "http_req_failed_rate"} <= wait_for(rules, what="rules")


def test_logs_follow_prints_new_lines_and_stops_on_ctrl_c(stack: StackHandle) -> None:
    import signal
    import subprocess
    import sys
    import threading

    proc = subprocess.Popen(
        [sys.executable, "-m", "chaosctl.cli.main", "stack", "logs", "orders", "--follow",
         "--tail", "0"],
        env=stack.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(proc.stdout or []), daemon=True)
    reader.start()
    try:
        log = stack.home / "logs" / "orders.0.log"
        marker = "follow-marker-from-test"

        def marker_seen() -> bool:
            with open(log, "a") as fh:  # keep appending until the follower has started
                fh.write(marker + "\n")
            return any(marker in line for line in seen)

        wait_for(marker_seen, timeout=30, interval=0.3, what="followed log line")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

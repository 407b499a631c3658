"""service-down / service-hang / notifications-down: visible in `chaos status` and the
runtime, brought back by the detached reverter after --for, or by `chaos clear`."""

from __future__ import annotations

from typing import Any

from tests.e2e.chaos_support import (
    audit_lines,
    cli_json,
    pid_gone,
    service_ok,
    worker_files,
)
from tests.support import wait_for


def _proc(stack: Any, name: str) -> dict[str, Any]:
    return next(p for p in stack.status()["processes"] if p["name"] == name)


def _listed(stack: Any, kind: str, service: str) -> dict[str, Any] | None:
    rc, status = cli_json(stack, "chaos", "status")
    found = [f for f in status["faults"] if f["kind"] == kind and f["service"] == service]
    return found[0] if found and rc == 1 else None


def test_service_down_comes_back_after_for(chaos_stack: Any) -> None:
    stack = chaos_stack
    old = stack.pids("payments")
    rc, out = cli_json(stack, "inject", "service-down", "payments", "--for", "10s")
    assert rc == 0 and out["worker"]["kind"] == "revert"
    assert all(pid_gone(pid) for pid in old.values())
    item = _listed(stack, "killed", "payments")
    assert item and item["fault"] == "service-down" and item["ttl_s"] is not None
    assert item["source"]["command"].startswith("chaosctl inject service-down")
    wait_for(lambda: service_ok(stack, "payments"), 60, what="payments back by itself")
    wait_for(lambda: not worker_files(stack), 30, what="the reverter to finish")
    assert set(stack.pids("payments").values()).isdisjoint(old.values())
    reverts = [e for e in audit_lines(stack) if e["action"] == "revert"]
    assert reverts and reverts[-1]["target"] == "payments" and reverts[-1]["outcome"] == "ok"
    rc, status = cli_json(stack, "chaos", "status")
    assert rc == 0 and status["clean"]


def test_service_hang_is_paused_then_cleared(chaos_stack: Any) -> None:
    stack = chaos_stack
    rc, out = cli_json(stack, "inject", "service-hang", "inventory", "--for", "5m")
    assert rc == 0
    assert _proc(stack, "inventory")["paused"]
    assert _listed(stack, "paused", "inventory")
    reverter = out["worker"]["pid"]
    rc, out = cli_json(stack, "chaos", "clear", "service-hang")
    assert rc == 0 and out["ok"], out
    assert not _proc(stack, "inventory")["paused"]
    assert pid_gone(reverter) and not worker_files(stack)
    wait_for(lambda: service_ok(stack, "inventory"), 30, what="inventory answering again")


def test_notifications_down_until_cleared(chaos_stack: Any) -> None:
    stack = chaos_stack
    rc, out = cli_json(stack, "inject", "notifications-down", "--for", "0")
    assert rc == 0
    assert not _proc(stack, "notifications")["alive"]
    item = _listed(stack, "killed", "notifications")
    assert item and item["fault"] == "notifications-down"
    rc, out = cli_json(stack, "chaos", "clear", "notifications")
    assert rc == 0 and out["ok"], out
    assert _proc(stack, "notifications")["alive"]
    assert service_ok(stack, "notifications")
    assert not worker_files(stack)


def test_service_hang_comes_back_by_itself(chaos_stack: Any) -> None:
    stack = chaos_stack
    rc, _ = cli_json(stack, "inject", "service-hang", "notifications", "--for", "2s")
    assert rc == 0
    wait_for(lambda: not _proc(stack, "notifications")["paused"], 30, what="SIGCONT by itself")
    wait_for(lambda: not worker_files(stack), 30, what="the reverter to finish")

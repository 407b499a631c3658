"""inject against a paused (SIGSTOPped) service: the POST is queued in the kernel and lands on
SIGCONT. inject must not say "nothing was set" and leave it to land: it says the fault is not
in effect and an undo guard deletes the key once the request lands; the audit log says so."""

from __future__ import annotations

from typing import Any

from tests.e2e.chaos_support import audit_lines, chaos_keys, cli_json, worker_files
from tests.support import wait_for

KEY = "chaos:payments:error_rate"


def _pause_and_inject(stack: Any) -> dict[str, Any]:
    assert stack.cli("stack", "pause", "payments").returncode == 0
    result = stack.cli("inject", "payment-errors", "--rate", "0.3", "--ttl", "5m")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "did not answer" in result.stderr and "not in effect" in result.stderr
    [inject] = [e for e in audit_lines(stack) if e["action"] == "inject"][-1:]
    assert inject["outcome"] == "failed" and "undo guard" in inject["detail"]
    rc, status = cli_json(stack, "chaos", "status")
    [guard] = [f for f in status["faults"] if f["kind"] == "worker"]
    assert guard["fault"] == "payment-errors" and "undo guard" in guard["detail"]
    return guard


def _undo_entry(stack: Any) -> dict[str, Any] | None:
    undos = [e for e in audit_lines(stack) if e["action"] == "undo"]
    return undos[-1] if undos else None


def test_inject_on_paused_service_is_undone_when_it_resumes(chaos_stack: Any) -> None:
    stack = chaos_stack
    before = len([e for e in audit_lines(stack) if e["action"] == "undo"])
    try:
        _pause_and_inject(stack)
    finally:
        assert stack.cli("stack", "resume", "payments").returncode == 0
    wait_for(lambda: len([e for e in audit_lines(stack) if e["action"] == "undo"]) > before,
             timeout=60, what="the undo guard's audit line")
    undo = _undo_entry(stack)
    assert undo is not None and undo["outcome"] == "ok", undo
    # The queued request did land after SIGCONT (the bug), and the guard took it back.
    assert "had landed" in undo["detail"] and undo["target"] == KEY, undo
    assert KEY not in chaos_keys(stack)
    assert not worker_files(stack)
    # The service works, and the same fault can now be injected for real.
    rc, out = cli_json(stack, "inject", "payment-errors", "--rate", "0.3", "--ttl", "5m")
    assert rc == 0 and out["keys"][KEY]["value"] == 0.3
    assert stack.cli("chaos", "clear", "payment-errors").returncode == 0


def test_clear_all_resumes_and_leaves_no_late_fault(chaos_stack: Any) -> None:
    stack = chaos_stack
    try:
        _pause_and_inject(stack)
        rc, out = cli_json(stack, "chaos", "clear", "--all")
    finally:
        stack.cli("stack", "resume", "payments")
    assert rc == 0 and out["ok"], out
    # clear resumed payments and waited for the guard: the late request is already undone.
    assert not worker_files(stack)
    assert KEY not in chaos_keys(stack)
    undo = _undo_entry(stack)
    assert undo is not None and undo["outcome"] == "ok", undo

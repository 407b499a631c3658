"""Carry out one scenario step against the stack, and undo what a rollback must undo.

Faults go through the injector (so each carries a TTL and `chaos clear` knows it); a restart
goes through the runtime backend, like `chaosctl stack restart`. Waiting is the runner's job
(it keeps checking its abort guard while it waits).
"""

from __future__ import annotations

from collections.abc import Iterable

from chaosctl.chaos.halt import delete_keys
from chaosctl.chaos.injector import inject
from chaosctl.config import Settings
from chaosctl.domain import FAULTS, REDIS_FAULTS
from chaosctl.errors import InvalidInputError
from chaosctl.gameday.scenarios import STEP_KINDS, Step
from chaosctl.runtime import get_backend
from chaosctl.runtime.base import ALL_PROCESSES


def check_step(step: Step) -> None:
    """Refuse a step that could not run (a scenario typo), before anything is touched."""
    valid = {"inject": FAULTS, "clear": tuple(REDIS_FAULTS), "restart": ALL_PROCESSES,
             "wait": ("",)}
    if step.kind not in STEP_KINDS:
        raise InvalidInputError(f"unknown step kind {step.kind!r}; valid: {', '.join(STEP_KINDS)}")
    if step.target not in valid[step.kind]:
        raise InvalidInputError(f"step {step.kind} cannot target {step.target!r}; valid: "
                                f"{', '.join(valid[step.kind]) or '(none)'}")
    if step.kind == "wait" and not 0 < float(step.options.get("s", 0)) <= 60:
        raise InvalidInputError("a wait step needs options s within 0 < s <= 60")


def run_step(settings: Settings, step: Step, ttl_s: int) -> None:
    """Do one non-wait step now (raises ChaosctlError when the stack refuses)."""
    check_step(step)
    if step.kind == "inject":
        inject(settings, step.target, ttl=ttl_s, **step.options)
    elif step.kind == "clear":
        delete_keys(settings, [REDIS_FAULTS[step.target].key])
    elif step.kind == "restart":
        get_backend(settings).restart([step.target])


def ensure_running(settings: Settings, names: Iterable[str]) -> list[str]:
    """Start any of `names` that is not running (a restart cut short by an error or Ctrl-C);
    returns what it started. `chaos clear` covers faults, not a restart of redis."""
    wanted = set(names)
    if not wanted:
        return []
    backend = get_backend(settings)
    down = sorted({p.name for p in backend.status().processes
                   if p.name in wanted and not p.alive})
    for name in down:
        backend.start(name)
    return down

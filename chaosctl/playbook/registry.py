"""The step registry: actions register by decorator with a typed params model.

An action is a function `(ctx: StepContext, params: ParamsModel) -> output` where output is
JSON-able (recorded in the journal). It raises StepFailed with a message saying what went
wrong. `mutating` actions change the stack: they are refused in `diagnose`, skipped by
--dry-run and counted by the action cap.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import BaseModel

from chaosctl.clients.http import http_client
from chaosctl.clients.prometheus import Prometheus
from chaosctl.config import Settings
from chaosctl.playbook.conditions import Probe
from chaosctl.runtime import get_backend

STEP_MODULES = (
    "chaosctl.playbook.steps_evidence",
    "chaosctl.playbook.steps_remedy",
    "chaosctl.playbook.steps_triage",
)


class StepFailed(Exception):
    """An action could not do its job; the message says what and why."""


@dataclass(frozen=True)
class ActionSpec:
    name: str
    func: Callable[[Any, Any], Any]
    params: type[BaseModel]
    mutating: bool
    summary: str


_REGISTRY: dict[str, ActionSpec] = {}


def action(name: str, params: type[BaseModel], *, mutating: bool,
           summary: str) -> Callable[[Callable[[Any, Any], Any]], Callable[[Any, Any], Any]]:
    """Register `func` as action `name` (a duplicate name is a programming error)."""

    def register(func: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        if name in _REGISTRY:
            raise RuntimeError(f"action {name!r} registered twice")
        _REGISTRY[name] = ActionSpec(name, func, params, mutating, summary)
        return func

    return register


def registry() -> dict[str, ActionSpec]:
    """Every registered action (the step modules are imported on first use)."""
    for module in STEP_MODULES:
        importlib.import_module(module)
    return _REGISTRY


def get_action(name: str) -> ActionSpec | None:
    return registry().get(name)


class StepContext:
    """What an action may use: settings, Prometheus, the runtime backend, an evidence probe."""

    def __init__(self, settings: Settings, prom: Any = None) -> None:
        self.settings = settings
        self.prom = prom or Prometheus(settings.prometheus_url)
        self._backend: Any = None

    @property
    def backend(self) -> Any:
        if self._backend is None:
            self._backend = get_backend(self.settings)
        return self._backend

    def probe(self) -> Any:
        """A fresh evidence snapshot (conditions inside actions must see the stack now)."""
        return Probe(self.settings, self.prom)

    def admin_headers(self) -> dict[str, str]:
        token = self.settings.admin_token()
        if not token:
            raise StepFailed(
                f"no admin token (looked in {self.settings.admin_token_file} and "
                "CHAOSCTL_ADMIN_TOKEN); start the stack with `chaosctl stack up`"
            )
        return {"Authorization": f"Bearer {token}"}

    def http(self, method: str, service: str, path: str, *, timeout: float = 5.0,
             admin: bool = False, **kwargs: Any) -> Any:
        """One HTTP call to a service of the stack; StepFailed when it cannot be reached."""
        headers = self.admin_headers() if admin else {}
        url = f"{self.settings.url(service)}{path}"
        try:
            with http_client(timeout=timeout) as client:
                return client.request(method, url, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise StepFailed(f"{method} {url} failed: {type(exc).__name__}") from exc

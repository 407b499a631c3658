"""The playbook model: what a YAML file in playbooks/ may say, validated as a whole (pydantic).

A playbook encodes one runbook incident in four phases:

- detect: a condition tree (`any`/`all`/`not`) over PromQL symptoms (`query` OP `threshold`)
  and non-Prometheus evidence (`chaos_key` set in Redis, a service's `health` status, a
  chaosctl `load_test` burst running);
- diagnose: read-only steps that gather evidence;
- remediate: ordered actions, with `if`/`then`/`else` branches picked at run time;
- verify: conditions that must all hold for `hold_for` (within `timeout`).

Step params are checked against each action's own params model (registry.py) after this
structural validation, so an unknown action or a bad param is a validation error up front.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
)

from chaosctl.domain import CHAOS_KEYS, SERVICES, ServiceName
from chaosctl.domain import parse_duration as parse_domain_duration
from chaosctl.errors import InvalidInputError

HEALTH_STATUSES = ("ok", "degraded", "down", "unreachable", "error")
Comparison = Literal["<", "<=", ">", ">=", "==", "!="]
NAME_RE = re.compile(r"^[a-z][a-z0-9-]*$")


def parse_duration(value: Any) -> float:
    """"10s", "2m", "500ms" or a number of seconds -> seconds (float); the CLI's parser,
    with its error turned into the ValueError pydantic reports with the field's path."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '10s'")
    try:
        return parse_domain_duration(value)
    except InvalidInputError as exc:
        raise ValueError(f"{exc.message}; write e.g. 10s, 2m or 500ms") from None


Duration = Annotated[float, BeforeValidator(parse_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# -- conditions ---------------------------------------------------------------------------------


class PromCondition(_Strict):
    """A PromQL symptom: true when any series of `query` compares true with `threshold`."""

    query: str = Field(min_length=1)
    op: Comparison
    threshold: float
    name: str | None = None

    def promql(self) -> str:
        """The symptom as one PromQL comparison (what the alert rule uses)."""
        return f"({self.query.strip()}) {self.op} {self.threshold:g}"

    def label(self) -> str:
        return self.name or f"{self.query.strip()} {self.op} {self.threshold:g}"


class ChaosKeyCondition(_Strict):
    """Evidence from Redis: true when the chaos key is set (or unset when `set: false`)."""

    chaos_key: str
    is_set: bool = Field(default=True, alias="set")
    name: str | None = None

    @field_validator("chaos_key")
    @classmethod
    def _known_key(cls, v: str) -> str:
        if v not in CHAOS_KEYS:
            raise ValueError(f"unknown chaos key {v!r}; valid keys: {', '.join(CHAOS_KEYS)}")
        return v

    def label(self) -> str:
        return self.name or f"{self.chaos_key} {'set' if self.is_set else 'not set'}"


class HealthCondition(_Strict):
    """Evidence from GET /health: true when ANY listed service has one of `status`."""

    health: list[ServiceName] = Field(min_length=1)
    status: list[Literal["ok", "degraded", "down", "unreachable", "error"]] = Field(min_length=1)
    name: str | None = None

    @field_validator("health", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("status", mode="before")
    @classmethod
    def _status_list(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    def label(self) -> str:
        return self.name or f"health of {'/'.join(self.health)} in {'|'.join(self.status)}"


LOAD_TEST_KINDS = ("overload", "retry-storm")  # chaosctl's load-burst worker kinds
LOAD_TEST_STATES = ("running", "idle")


class LoadTestCondition(_Strict):
    """Evidence from chaosctl's own state dir: true while one of its load bursts (`chaosctl
    inject overload` / `retry-storm` worker, any of `kinds`) is running (`load_test: running`),
    or while none is (`load_test: idle`). The runbook's "is a load test running?" for tests
    driven by chaosctl; an external load tool is not seen."""

    load_test: Literal["running", "idle"]
    kinds: list[Literal["overload", "retry-storm"]] = Field(
        default_factory=lambda: list(LOAD_TEST_KINDS), min_length=1)
    name: str | None = None

    @field_validator("load_test", mode="before")
    @classmethod
    def _state(cls, v: Any) -> Any:
        # A bool (`load_test: true`) reads as yes/no in YAML but is ambiguous next to `set:`;
        # one spelling keeps playbooks uniform, and the message says which to write.
        if v not in LOAD_TEST_STATES:
            raise ValueError(
                f"load_test must be 'running' or 'idle', not {v!r}; write e.g. "
                "{load_test: running} (holds while a chaosctl overload/retry-storm burst runs)")
        return v

    @field_validator("kinds", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @property
    def running(self) -> bool:
        return self.load_test == "running"

    def label(self) -> str:
        return self.name or (f"chaosctl load test ({'/'.join(self.kinds)}) "
                             f"{'running' if self.running else 'not running'}")


class AnyCondition(_Strict):
    any: list[Condition] = Field(min_length=1)
    name: str | None = None


class AllCondition(_Strict):
    all: list[Condition] = Field(min_length=1)
    name: str | None = None


class NotCondition(_Strict):
    not_: Condition = Field(alias="not")
    name: str | None = None


CONDITION_KINDS = ("query", "chaos_key", "health", "load_test", "any", "all", "not")


def _condition_kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return {PromCondition: "query", ChaosKeyCondition: "chaos_key",
                HealthCondition: "health", LoadTestCondition: "load_test",
                AnyCondition: "any", AllCondition: "all", NotCondition: "not"}.get(type(value))
    if isinstance(value, dict):
        for kind in CONDITION_KINDS:
            if kind in value:
                return kind
    return None


Condition = Annotated[
    Annotated[PromCondition, Tag("query")]
    | Annotated[ChaosKeyCondition, Tag("chaos_key")]
    | Annotated[HealthCondition, Tag("health")]
    | Annotated[LoadTestCondition, Tag("load_test")]
    | Annotated[AnyCondition, Tag("any")]
    | Annotated[AllCondition, Tag("all")]
    | Annotated[NotCondition, Tag("not")],
    Discriminator(
        _condition_kind,
        custom_error_type="unknown_condition",
        custom_error_message=(
            "a condition needs one of the keys: query (with op, threshold), chaos_key, "
            "health (with status), load_test (running or idle), any, all, not"
        ),
    ),
]

AnyCondition.model_rebuild()
AllCondition.model_rebuild()
NotCondition.model_rebuild()


def iter_conditions(cond: Any) -> list[Any]:
    """Every leaf condition of a tree, depth first."""
    if isinstance(cond, AnyCondition):
        return [leaf for c in cond.any for leaf in iter_conditions(c)]
    if isinstance(cond, AllCondition):
        return [leaf for c in cond.all for leaf in iter_conditions(c)]
    if isinstance(cond, NotCondition):
        return iter_conditions(cond.not_)
    return [cond]


# -- steps --------------------------------------------------------------------------------------


class ActionStep(_Strict):
    """One action from the registry, with its params (checked against the action's model)."""

    action: str
    params: dict[str, Any] = Field(default_factory=dict)
    name: str | None = None

    def label(self) -> str:
        return self.name or self.action


class BranchStep(_Strict):
    """Pick `then` when the condition holds at run time, else `else`."""

    if_: Condition = Field(alias="if")
    then: list[Step] = Field(min_length=1)
    else_: list[Step] = Field(default_factory=list, alias="else")
    name: str | None = None

    def label(self) -> str:
        return self.name or "branch"


def _step_kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return "action" if isinstance(value, ActionStep) else "if"
    if isinstance(value, dict):
        if "action" in value:
            return "action"
        if "if" in value:
            return "if"
    return None


Step = Annotated[
    Annotated[ActionStep, Tag("action")] | Annotated[BranchStep, Tag("if")],
    Discriminator(
        _step_kind,
        custom_error_type="unknown_step",
        custom_error_message="a step needs `action` (with params) or `if` (with then/else)",
    ),
]
BranchStep.model_rebuild()


def iter_steps(steps: list[Any]) -> list[ActionStep]:
    """Every action of a step list, both branches included (for validation)."""
    found: list[ActionStep] = []
    for step in steps:
        if isinstance(step, BranchStep):
            found += iter_steps(step.then) + iter_steps(step.else_)
        else:
            found.append(step)
    return found


# -- phases and the playbook --------------------------------------------------------------------


class Verify(_Strict):
    """Recovered when every condition holds continuously for `hold_for` within `timeout`."""

    conditions: list[Condition] = Field(min_length=1)
    hold_for: Duration = 10.0
    timeout: Duration = 90.0
    interval: Duration = 1.0


class Playbook(_Strict):
    name: str
    title: str = Field(min_length=1)
    severity: Literal["critical", "high", "warning", "info"]
    runbook: str = Field(min_length=1, description="the runbook section this playbook encodes")
    description: str = ""
    # Alertmanager-style inhibition: while one of these fires, this one is reported as
    # inhibited (a consequence), so diagnose names the cause only.
    inhibited_by: list[str] = Field(default_factory=list)
    detect: Condition
    diagnose: list[Step] = Field(default_factory=list)
    remediate: list[Step] = Field(min_length=1)
    verify: Verify

    @field_validator("name")
    @classmethod
    def _name_shape(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError(
                f"name {v!r} must be lower-case words joined by '-', e.g. payment-degradation"
            )
        return v


def health_services() -> tuple[str, ...]:
    return SERVICES

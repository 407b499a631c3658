"""Read-only actions that gather evidence (the runbook's `curl`, `redis-cli get`, SQL, logs)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from chaosctl.clients.prometheus import PromQLError
from chaosctl.domain import ServiceName, sqlalchemy_url
from chaosctl.errors import ChaosctlError
from chaosctl.playbook.registry import StepContext, StepFailed, action

MAX_OUTPUT_CHARS = 4000


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _body(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:MAX_OUTPUT_CHARS]


class HttpGetParams(_Params):
    service: ServiceName
    path: str = Field(pattern=r"^/", description="path on the service, e.g. /health")


@action("http_get", HttpGetParams, mutating=False,
        summary="GET a path of a service and record the answer (e.g. /health)")
def http_get(ctx: StepContext, p: HttpGetParams) -> Any:
    response = ctx.http("GET", p.service, p.path, timeout=3.0)
    return {"status_code": response.status_code, "body": _body(response)}


class PromqlParams(_Params):
    query: str = Field(min_length=1)


@action("promql", PromqlParams, mutating=False,
        summary="run a PromQL instant query and record every series' value")
def promql(ctx: StepContext, p: PromqlParams) -> Any:
    try:
        samples = ctx.prom.query(p.query)
    except PromQLError as exc:
        raise StepFailed(f"Prometheus refused {p.query!r}: {exc}") from exc
    return [{"labels": s.labels, "value": s.value} for s in samples]


class ChaosConfigParams(_Params):
    service: Literal["payments", "inventory"]


@action("chaos_config", ChaosConfigParams, mutating=False,
        summary="read a service's chaos config (which chaos keys are set, their TTL)")
def chaos_config(ctx: StepContext, p: ChaosConfigParams) -> Any:
    response = ctx.http("GET", p.service, "/chaos/config", timeout=3.0)
    if response.status_code != 200:
        raise StepFailed(f"GET /chaos/config on {p.service} answered {response.status_code}")
    return response.json()


class NoParams(_Params):
    pass


@action("breakers", NoParams, mutating=False,
        summary="read every circuit breaker from the gateway's /status/breakers")
def breakers(ctx: StepContext, _p: NoParams) -> Any:
    response = ctx.http("GET", "gateway", "/status/breakers", timeout=3.0)
    return _body(response)


@action("outbox_count", NoParams, mutating=False,
        summary="SQL: SELECT COUNT(*), MIN(created_at) FROM outbox_events WHERE NOT published")
def outbox_count(ctx: StepContext, _p: NoParams) -> Any:
    # Imported here: SQLAlchemy costs 1.5-2 s of import on the 2-core machine (python -X
    # importtime), and every playbook command loads this module through the step registry.
    from sqlalchemy import create_engine, text

    url = ctx.settings.database_url
    if not url:
        db = ctx.settings.home / "data" / "orders.db"
        if not db.is_file():
            raise StepFailed(f"no orders database at {db}; is the stack up?")
        url = f"sqlite:///file:{db}?mode=ro&uri=true"
    engine = create_engine(sqlalchemy_url(url))
    try:
        with engine.connect() as conn:
            row = conn.execute(text(
                "SELECT COUNT(*), MIN(created_at) FROM outbox_events WHERE NOT published"
            )).one()
    except Exception as exc:  # noqa: BLE001 - any DB failure is this step's failure
        raise StepFailed(f"outbox query failed: {type(exc).__name__}: {exc}"[:300]) from exc
    finally:
        engine.dispose()
    return {"pending": int(row[0]), "oldest_created_at": str(row[1]) if row[1] else None}


class LogTailParams(_Params):
    service: ServiceName
    lines: int = Field(default=50, ge=1, le=1000)
    grep: str | None = None

    @field_validator("grep")
    @classmethod
    def _non_empty(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("grep must be a non-empty string or left out")
        return v


@action("log_tail", LogTailParams, mutating=False,
        summary="the last lines of a service's log, optionally only those containing `grep`")
def log_tail(ctx: StepContext, p: LogTailParams) -> Any:
    try:
        # Read more than asked when filtering, so a grep still finds recent matches.
        lines = list(ctx.backend.logs(p.service, tail=p.lines * (20 if p.grep else 1)))
    except ChaosctlError as exc:
        raise StepFailed(str(exc)) from exc
    if p.grep:
        lines = [line for line in lines if p.grep.lower() in line.lower()]
    return lines[-p.lines:]

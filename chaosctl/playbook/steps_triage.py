"""Triage actions for failures no specific playbook explains (the `order-failures` catch-all).

`clear_worst_chaos` is the runbook's "clear any lingering chaos injection" when the failing
service is not known in advance: it ranks the services that carry chaos by how many calls to
them failed recently and clears the worst one only, so one run changes one thing.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from chaosctl.clients.prometheus import PromQLError
from chaosctl.domain import SERVICE_FAULTS
from chaosctl.playbook.model import Duration
from chaosctl.playbook.registry import StepContext, StepFailed, action


class ClearWorstChaosParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    window: Duration = Field(default=60.0, description="how far back failed calls are counted")


def chaos_by_service(chaos_keys: list[Any]) -> dict[str, list[str]]:
    """service -> the names of its chaos keys that are set (from the health report)."""
    found: dict[str, list[str]] = {}
    for entry in chaos_keys:
        _prefix, service, fault = (entry.key.split(":", 2) + ["", ""])[:3]
        if service in SERVICE_FAULTS and fault in SERVICE_FAULTS[service]:
            found.setdefault(service, []).append(fault)
    return found


def rank_services(chaotic: list[str], errors: dict[str, float]) -> list[str]:
    """Services with chaos, most failed calls first; ties keep the catalogue's order."""
    order = list(SERVICE_FAULTS)
    return sorted(chaotic, key=lambda s: (-errors.get(s, 0.0), order.index(s)))


@action("clear_worst_chaos", ClearWorstChaosParams, mutating=True,
        summary="clear the chaos keys of the service with chaos set that failed the most calls "
                "(downstream_errors_total over `window`)")
def clear_worst_chaos(ctx: StepContext, p: ClearWorstChaosParams) -> Any:
    report = ctx.probe().health()
    if report.redis.status != "ok":
        raise StepFailed(f"cannot read the chaos keys: redis {report.redis.status}")
    chaotic = chaos_by_service(report.chaos)
    if not chaotic:
        return {"cleared": None, "note": "no chaos key is set: nothing lingering to clear"}
    query = f"sum by (to_service) (increase(downstream_errors_total[{max(1, round(p.window))}s]))"
    try:
        samples = ctx.prom.query(query)
    except PromQLError as exc:
        raise StepFailed(f"Prometheus refused {query!r}: {exc}") from exc
    errors = {s.labels.get("to_service", ""): (0.0 if math.isnan(s.value) else s.value)
              for s in samples}
    ranking = rank_services(list(chaotic), errors)
    worst = ranking[0]
    response = ctx.http("DELETE", worst, "/chaos/config")
    if response.status_code != 200:
        raise StepFailed(f"DELETE /chaos/config on {worst} answered {response.status_code}: "
                         f"{response.text[:200]}")
    return {
        "cleared": worst,
        "faults": chaotic[worst],
        "ranking": [{"service": s, "failed_calls": round(errors.get(s, 0.0), 1),
                     "chaos": chaotic[s]} for s in ranking],
        "left": {s: chaotic[s] for s in ranking[1:]},
    }

"""Chaos faults read from Redis (the runbook's keys), and the /chaos/config endpoints.

Every key is written with a TTL so nothing lingers; reads are cached for CACHE_S so a busy
service does not hit Redis on every request, and a Redis outage means "no chaos".
"""

import asyncio
import random
import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model

from shop import metrics
from shop.openapi_errors import error_responses
from shop.settings import ShopSettings
from shop.web import ApiError, require_admin

# fault name -> (kind, upper bound); kind "rate" is a probability, "ms" a duration.
FAULTS: dict[str, dict[str, tuple[str, float]]] = {
    "payments": {"error_rate": ("rate", 1.0), "latency_ms": ("ms", 60000.0)},
    "inventory": {"lock_contention_ms": ("ms", 60000.0), "error_rate": ("rate", 1.0)},
}
# At most this stale: a fault starts (or stops) within 100 ms of its key being written, a small
# part of the game days' time-to-detect (1 s scrapes). One MGET per 100 ms per busy service.
CACHE_S = 0.1


def key_of(service: str, fault: str) -> str:
    return f"chaos:{service}:{fault}"


class ChaosStore:
    def __init__(self, service: str, redis, default_ttl_s: int) -> None:  # noqa: ANN001
        self.service, self.redis, self.default_ttl_s = service, redis, default_ttl_s
        self.faults = FAULTS[service]
        self._cache: dict[str, float] = {}
        self._cache_at = 0.0
        self._lock = asyncio.Lock()
        self.redis_ok = True

    async def current(self) -> dict[str, float]:
        """Active faults (value > 0), from a cache at most CACHE_S old."""
        if time.monotonic() - self._cache_at < CACHE_S:
            return self._cache
        async with self._lock:
            if time.monotonic() - self._cache_at < CACHE_S:
                return self._cache
            values: dict[str, float] = {}
            try:
                raw = await self.redis.mget([key_of(self.service, f) for f in self.faults])
                self.redis_ok = True
            except Exception:  # noqa: BLE001 - Redis down means no chaos, not an outage
                raw = [None] * len(self.faults)
                self.redis_ok = False
            for fault, value in zip(self.faults, raw, strict=True):
                try:
                    number = float(value) if value is not None else 0.0
                except ValueError:
                    number = 0.0
                if number > 0:
                    values[fault] = number
            self._cache, self._cache_at = values, time.monotonic()
            return values

    async def describe(self) -> dict[str, Any]:
        keys = [key_of(self.service, f) for f in self.faults]
        pipe = self.redis.pipeline()
        for key in keys:
            pipe.get(key)
            pipe.ttl(key)
        raw = await pipe.execute()
        faults = {}
        for i, fault in enumerate(self.faults):
            value, ttl = raw[2 * i], raw[2 * i + 1]
            faults[fault] = {
                "key": keys[i],
                "value": float(value) if value is not None else None,
                "ttl_s": int(ttl) if value is not None and ttl is not None and ttl >= 0 else None,
            }
        return {"service": self.service, "faults": faults}

    async def set(self, values: dict[str, float], ttl_s: int) -> None:
        pipe = self.redis.pipeline(transaction=True)
        for fault, value in values.items():
            pipe.set(key_of(self.service, fault), repr(float(value)) if self.faults[fault][0]
                     == "rate" else str(int(value)), ex=ttl_s)
        await pipe.execute()
        self._cache_at = 0.0

    async def clear(self, fault: str | None = None) -> list[str]:
        keys = [key_of(self.service, f) for f in self.faults if fault in (None, f)]
        await self.redis.delete(*keys)
        self._cache_at = 0.0
        return keys

    # -- applying faults ---------------------------------------------------------------
    async def maybe_fail(self, fault: str = "error_rate") -> bool:
        rate = (await self.current()).get(fault, 0.0)
        if rate > 0 and random.random() < rate:
            metrics.chaos_injected_total.labels(self.service, fault).inc()
            return True
        return False


def _not_bool(value: Any) -> Any:
    # Lax pydantic reads JSON `true` as 1 / 1.0: {"error_rate": true} would mean 100 % errors.
    if isinstance(value, bool):
        raise ValueError("must be a number, not true/false")
    return value


NoBool = BeforeValidator(_not_bool)


def _config_model(service: str, suffix: str = "") -> type[BaseModel]:
    """The faults a service takes, with their bounds; one model for the JSON body and (with
    a `suffix`, so OpenAPI has two names) one for the study's query-string form."""
    fields: dict[str, Any] = {}
    for fault, (kind, upper) in FAULTS[service].items():
        if kind == "rate":
            fields[fault] = (Annotated[float | None, NoBool],
                             Field(default=None, ge=0.0, le=upper, allow_inf_nan=False))
        else:
            fields[fault] = (Annotated[int | None, NoBool], Field(default=None, ge=0,
                                                                   le=int(upper)))
    fields["ttl_s"] = (Annotated[int | None, NoBool], Field(default=None, ge=1, le=86400))
    return create_model(
        f"{service.title()}ChaosConfig{suffix}",
        __config__=ConfigDict(extra="forbid", strict=False),
        **fields,
    )


def chaos_router(store: ChaosStore, settings: ShopSettings) -> APIRouter:
    router = APIRouter()
    Config = _config_model(store.service)  # noqa: N806 - a class
    ConfigQuery = _config_model(store.service, "Query")  # noqa: N806 - a class

    @router.get("/chaos/config", responses=error_responses(503))
    async def get_config() -> dict:
        try:
            return await store.describe()
        except Exception as exc:  # noqa: BLE001 - Redis down: say so, not "internal error"
            raise ApiError(503, "redis_unavailable",
                           "cannot read chaos keys: Redis is unreachable") from exc

    async def set_config(
        request: Request,
        body: Annotated[Config | None, Body()] = None,  # type: ignore[valid-type]
        query: Annotated[ConfigQuery, Query()] = None,  # type: ignore[valid-type, assignment]
    ) -> dict:
        """Set faults from a JSON body, or from query parameters with no body (the study's
        client: `POST /chaos/config?error_rate=0.2`). Admin token and loopback Host."""
        require_admin(request, settings)
        from_query = query.model_dump(exclude_none=True) if query is not None else {}
        if body is not None and from_query:
            raise ApiError(422, "invalid_request",
                           "send the faults either as query parameters or as a JSON body, "
                           "not both")
        data = body.model_dump(exclude_none=True) if body is not None else from_query
        ttl = data.pop("ttl_s", None) or settings.chaos_ttl_s
        if not data:
            raise ApiError(422, "invalid_request",
                           f"name at least one fault: {', '.join(store.faults)}")
        try:
            await store.set(data, ttl)
            return await store.describe()
        except Exception as exc:  # noqa: BLE001
            raise ApiError(503, "redis_unavailable",
                           "cannot write chaos keys: Redis is unreachable; nothing was set"
                           ) from exc

    # One route per method: FastAPI names a route's operationId after the first element of
    # its method *set*, so one POST+PUT route gave both operations the same id, taken from
    # whichever method the hash seed put first (a different OpenAPI document per run).
    for method in ("POST", "PUT"):
        router.add_api_route("/chaos/config", set_config, methods=[method],
                             responses=error_responses(401, 403, 503))

    @router.delete("/chaos/config", responses=error_responses(401, 403, 503))
    async def clear(request: Request, fault: str | None = None) -> dict:
        # No token needed (the runbook's reset loop sends none), but a loopback Host is: a
        # DNS-rebinding page must not be able to end a game day's faults.
        require_admin(request, settings, token_optional=True)
        if fault is not None and fault not in store.faults:
            raise ApiError(422, "invalid_request",
                           f"unknown fault {fault!r}; valid: {', '.join(store.faults)}")
        try:
            return {"service": store.service, "cleared": await store.clear(fault)}
        except Exception as exc:  # noqa: BLE001
            raise ApiError(503, "redis_unavailable",
                           "cannot delete chaos keys: Redis is unreachable") from exc

    return router

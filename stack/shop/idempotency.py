"""Idempotency keys in Redis: replay a completed response, 409 a concurrent duplicate,
422 the same key with a different body."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from shop import metrics
from shop.web import ApiError

KEY_TTL_S = 24 * 3600
IN_PROGRESS_TTL_S = 60  # a crashed request must not block its key for a day


def body_hash(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class Replay:
    status: int
    body: dict


class IdempotencyStore:
    def __init__(self, redis) -> None:  # noqa: ANN001
        self.redis = redis

    @staticmethod
    def _key(key: str) -> str:
        return f"idem:{key}"

    async def begin(self, key: str, fingerprint: str) -> Replay | None:
        """Claim the key. Returns a Replay for a completed request; raises 409/422/503."""
        record = json.dumps({"state": "in_progress", "hash": fingerprint})
        try:
            claimed = await self.redis.set(self._key(key), record, nx=True, ex=IN_PROGRESS_TTL_S)
            if claimed:
                return None
            raw = await self.redis.get(self._key(key))
        except Exception as exc:  # noqa: BLE001
            # Without Redis we cannot promise exactly-once: refuse rather than risk a double charge.
            raise ApiError(503, "idempotency_unavailable",
                           "idempotency store unavailable; retry with the same key",
                           headers={"Retry-After": "1"}) from exc
        if raw is None:  # expired between SET and GET: try once more
            return await self.begin(key, fingerprint)
        stored = json.loads(raw)
        if stored.get("hash") != fingerprint:
            raise ApiError(422, "idempotency_key_reused",
                           "this Idempotency-Key was used with a different request body")
        if stored.get("state") == "done":
            metrics.idempotency_hits_total.inc()
            return Replay(stored["status"], stored["body"])
        metrics.idempotency_conflicts_total.inc()
        raise ApiError(409, "request_in_progress",
                       "a request with this Idempotency-Key is still in progress",
                       headers={"Retry-After": "1"})

    async def complete(self, key: str, fingerprint: str, status: int, body: dict) -> None:
        record = json.dumps({"state": "done", "hash": fingerprint, "status": status,
                             "body": body})
        await self.redis.set(self._key(key), record, ex=KEY_TTL_S)

    async def abandon(self, key: str) -> None:
        try:
            await self.redis.delete(self._key(key))
        except Exception:  # noqa: BLE001 - it expires by itself after IN_PROGRESS_TTL_S
            pass

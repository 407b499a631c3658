"""Idempotency keys, Redis in front of the database.

Redis is the fast path: it holds an in-progress marker while a request runs and the finished
response for a day. It is not the source of truth: it may be restarted empty, evict a key, or
keep the marker of a request whose process was killed. The orders table is: every order made
with a key stores it under a UNIQUE index with the request-body hash (see shop/order_store.py),
and orders consults it whenever Redis cannot answer for certain.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from shop import metrics
from shop.redis_commands import RedisCommands
from shop.web import ApiError

KEY_TTL_S = 24 * 3600
IN_PROGRESS_TTL_S = 60  # a crashed request must not block its key for a day
# Bounds of each command (shop/redis_commands.py: its connections have no socket timeout).
COMMAND_TIMEOUT_S = 1.0
MAX_CONCURRENT_COMMANDS = 64
REPLAYED_HEADERS = {"X-Idempotency-Replayed": "true",  # the study's client contract
                    "Idempotent-Replayed": "true"}  # kept for existing clients


def body_hash(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class Replay:
    status: int
    body: dict


@dataclass
class InProgress:
    """Redis holds another request's marker: it is running, or its process died. `age_s`
    lets the caller tell the two apart by the request deadline."""

    age_s: float


def key_reused() -> ApiError:
    return ApiError(422, "idempotency_key_reused",
                    "this Idempotency-Key was used with a different request body; "
                    "send a new key for a different order")


def in_progress() -> ApiError:
    metrics.idempotency_conflicts_total.inc()
    return ApiError(409, "request_in_progress",
                    "a request with this Idempotency-Key is still in progress; retry later "
                    "with the same key", headers={"Retry-After": "1"})


def unavailable() -> ApiError:
    return ApiError(503, "idempotency_unavailable",
                    "idempotency store unavailable; retry with the same key",
                    headers={"Retry-After": "1"})


async def _once_more_on_reconnect(command: Callable[[], Awaitable[Any]]) -> Any:
    """Run a Redis command; after a Redis restart every pooled connection fails once with
    ConnectionError (and is reset), so one more try tells a restart from an outage."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    try:
        return await command()
    except RedisConnectionError:
        return await command()


class IdempotencyStore:
    """Two Redis commands per order, through RedisCommands (shop/redis_commands.py: redis-py
    connections of `redis`'s server used directly, each command bounded in time)."""

    def __init__(self, redis) -> None:  # noqa: ANN001
        self.redis = redis
        self.commands = RedisCommands(redis, COMMAND_TIMEOUT_S, MAX_CONCURRENT_COMMANDS)
        self._run = self.commands.run

    async def aclose(self) -> None:
        await self.commands.aclose()

    @staticmethod
    def _key(key: str) -> str:
        return f"idem:{key}"

    async def begin(self, key: str, fingerprint: str) -> Replay | InProgress | None:
        """Claim the key (None), or say why not: a finished response (Replay) or another
        request's marker (InProgress). Raises 422 for another body, 503 without Redis."""
        record = json.dumps({"state": "in_progress", "hash": fingerprint, "at": time.time()})
        try:
            claimed = await _once_more_on_reconnect(lambda: self._run(
                "SET", self._key(key), record, "NX", "EX", IN_PROGRESS_TTL_S))
            if claimed:
                return None
            raw = await _once_more_on_reconnect(lambda: self._run("GET", self._key(key)))
        except Exception as exc:  # noqa: BLE001
            # Redis down is not Redis empty: without it we cannot tell a concurrent duplicate
            # cheaply, so refuse (the client retries with the same key) rather than guess.
            raise unavailable() from exc
        if raw is None:  # expired between SET and GET: try once more
            return await self.begin(key, fingerprint)
        stored = json.loads(raw)
        if stored.get("hash") != fingerprint:
            raise key_reused()
        if stored.get("state") == "done":
            return Replay(stored["status"], stored["body"])
        return InProgress(max(0.0, time.time() - float(stored.get("at", time.time()))))

    async def take_over(self, key: str, fingerprint: str) -> None:
        """Replace a dead request's marker with ours (the DB's unique index still decides)."""
        record = json.dumps({"state": "in_progress", "hash": fingerprint, "at": time.time()})
        try:
            await _once_more_on_reconnect(
                lambda: self._run("SET", self._key(key), record, "EX", IN_PROGRESS_TTL_S))
        except Exception as exc:  # noqa: BLE001 - as in begin: 503, never a 500
            raise unavailable() from exc

    async def complete(self, key: str, fingerprint: str, status: int, body: dict,
                       rendered: bytes | None = None) -> None:
        """Store the finished response. `rendered` is `body` already encoded as JSON (the
        answer's own bytes): the record is built around it instead of encoding it again."""
        if rendered is None:
            record: str | bytes = json.dumps({"state": "done", "hash": fingerprint,
                                              "status": status, "body": body})
        else:
            record = b'{"state":"done","hash":%b,"status":%d,"body":%b}' % (
                json.dumps(fingerprint).encode(), status, rendered)
        await _once_more_on_reconnect(
            lambda: self._run("SET", self._key(key), record, "EX", KEY_TTL_S))

    async def remember(self, key: str, fingerprint: str, status: int, body: dict) -> None:
        """Best effort: put a response found in the DB back into Redis (after a Redis loss)."""
        try:
            await self.complete(key, fingerprint, status, body)
        except Exception:  # noqa: BLE001 - the DB answers next time as well
            pass

    async def abandon(self, key: str) -> None:
        try:
            await self._run("DEL", self._key(key))
        except Exception:  # noqa: BLE001 - it expires by itself after IN_PROGRESS_TTL_S
            pass

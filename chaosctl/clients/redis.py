"""redis-py clients for the stack's Redis (sync and asyncio), without retries.

redis-py would otherwise spend seconds backing off on a refused connection; a chaos halt or a
health check must say "Redis is down" at once.

redis-py is imported inside the factories, not at module level: `import redis` costs ~310 ms
CPU on the 2-core machine (median of 7, loaded, minus the bare interpreter's; it imports
asyncio too), and commands that only import a module using this one (`playbooks list`
through the step registry) never talk to Redis. The error classes below are resolved on
first access for the same reason; a module that catches them should look them up when it
catches (`clients.redis.RedisError`) or import them inside the function, since importing
them at module level loads redis-py then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chaosctl.config import Settings
from chaosctl.domain import is_loopback
from chaosctl.errors import InvalidInputError

if TYPE_CHECKING:
    import redis
    import redis.asyncio

DEFAULT_TIMEOUT_S = 1.0


def _loopback(host: str) -> str:
    if not is_loopback(host):
        raise InvalidInputError(f"Redis host {host!r} is not a loopback address",
                                hint="chaosctl only talks to 127.0.0.1 / localhost")
    return host


def redis_client(host: str, port: int, *, timeout: float = DEFAULT_TIMEOUT_S,
                 decode_responses: bool = True) -> redis.Redis:
    """A synchronous client; close it when done."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis(host=_loopback(host), port=port, socket_timeout=timeout,
                       socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0),
                       decode_responses=decode_responses)


def async_redis_client(host: str, port: int, *, timeout: float = DEFAULT_TIMEOUT_S,
                       decode_responses: bool = True) -> redis.asyncio.Redis:
    """An asyncio client; `await client.aclose()` when done."""
    import redis.asyncio
    from redis.asyncio.retry import Retry as AsyncRetry
    from redis.backoff import NoBackoff

    return redis.asyncio.Redis(host=_loopback(host), port=port, socket_timeout=timeout,
                               socket_connect_timeout=timeout, retry=AsyncRetry(NoBackoff(), 0),
                               decode_responses=decode_responses)


# The errors callers catch, re-exported so they need not import redis themselves:
# name here -> name in redis-py.
_ERRORS = {"RedisError": "RedisError", "RedisTimeoutError": "TimeoutError",
           "WatchError": "WatchError"}


def __getattr__(name: str) -> Any:
    if name in _ERRORS:
        import redis

        return getattr(redis, _ERRORS[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def stack_redis(settings: Settings, *, timeout: float = DEFAULT_TIMEOUT_S) -> redis.Redis:
    """A synchronous client for the stack's Redis (strings, not bytes)."""
    return redis_client(settings.host, settings.redis_port, timeout=timeout)


def stack_redis_async(settings: Settings, *,
                      timeout: float = DEFAULT_TIMEOUT_S) -> redis.asyncio.Redis:
    """An asyncio client for the stack's Redis (strings, not bytes)."""
    return async_redis_client(settings.host, settings.redis_port, timeout=timeout)

"""Redis commands on the hot path (the two idempotency commands of every order), sent on
redis-py connections used directly instead of through the client.

Through the client, each command went through a blocking pool (a Condition and a liveness
poll per checkout), a retry wrapper, observability hooks and, with a socket timeout,
asyncio.wait_for (a task per send): ~350 us of CPU for an order's two commands on the 2-core
box, 200 us this way (issue 13). Same server and options as the given client, same protocol
code; bounds are kept here: at most `max_concurrent` commands at once, each answered within
`timeout_s` or redis.exceptions.TimeoutError. A connection that failed or timed out is
closed, and so are the idle ones (after a Redis restart they are all dead), so a retry
connects afresh.
"""

from __future__ import annotations

import asyncio
from typing import Any


class RedisCommands:
    def __init__(self, redis: Any, timeout_s: float = 1.0, max_concurrent: int = 64) -> None:
        pool = redis.connection_pool
        self._connect = lambda: pool.connection_class(
            **{**pool.connection_kwargs, "socket_timeout": None})
        self.timeout_s = timeout_s
        self._idle: list[Any] = []
        self._gate = asyncio.Semaphore(max_concurrent)

    async def run(self, *args: Any) -> Any:
        """One command's raw reply (SET: b"OK" or None, GET: bytes or None, MGET: a list)."""
        from redis.exceptions import TimeoutError as RedisTimeoutError

        async with self._gate:
            conn = self._idle.pop() if self._idle else self._connect()
            try:
                async with asyncio.timeout(self.timeout_s):
                    await conn.send_command(*args, check_health=False)
                    reply = await conn.read_response()
            except BaseException as exc:
                await self._drop(conn)
                if isinstance(exc, TimeoutError):
                    raise RedisTimeoutError(
                        f"no answer to {args[0]} within {self.timeout_s:g} s") from exc
                raise
            self._idle.append(conn)
            return reply

    async def _drop(self, conn: Any = None) -> None:
        idle, self._idle = self._idle, []
        for dead in (conn, *idle) if conn is not None else idle:
            try:
                await dead.disconnect(nowait=True)
            except Exception:  # noqa: BLE001 - it is being thrown away
                pass

    async def aclose(self) -> None:
        await self._drop()

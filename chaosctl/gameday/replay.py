"""Re-send idempotency keys after a disruption, as a client would, and see what comes back.

Each key is re-sent with its original body until it gets a final answer (an order, or a 4xx
refusal) or the deadline passes: 409 (still in progress), 429 and 5xx are retried a round
later, with the pause between rounds doubling up to MAX_PAUSE_S as a polite client's would
(a replay burst every second would itself be the conflict storm the stack sheds).

The deadline is longer than the services' in-progress key TTL (60 s) on purpose: a key whose
original was cut off must still be answered by that original once the TTL ran out, not
turned into a second order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import httpx

from chaosctl.clients.http import async_http_client, require_loopback
from chaosctl.gameday.model import ReplayStats
from chaosctl.gameday.traffic import KeyUse, is_final, is_replay_header, order_id_of

MAX_KEYS = 60  # bounded: enough to see a defect, few enough to finish in a round or two
DEADLINE_S = 90.0
ROUND_PAUSE_S = 1.0
MAX_PAUSE_S = 5.0
CONCURRENCY = 8


def replay_keys(base_url: str, uses: Sequence[KeyUse], mode: str,
                deadline_s: float = DEADLINE_S) -> ReplayStats:
    """Replay up to MAX_KEYS of `uses` (first requests of their keys), CONCURRENCY at a time
    so one slow answer does not starve the others of their rounds."""
    require_loopback(base_url)
    chosen = list(uses)[:MAX_KEYS]
    stats = ReplayStats(mode=mode, keys=len(chosen))
    todo = {u.key: u for u in chosen}
    last: dict[str, str] = {}  # key -> what its latest attempt got (for the report)
    asyncio.run(_rounds(base_url, todo, last, stats, time.monotonic() + deadline_s))
    stats.unresolved = len(todo)
    stats.examples += [f"key {k}: no final answer within {deadline_s:.0f} s (last: "
                       f"{last.get(k, 'not tried')})" for k in list(todo)[:3]]
    stats.examples = stats.examples[:5]
    return stats


async def _rounds(base_url: str, todo: dict[str, KeyUse], last: dict[str, str],
                  stats: ReplayStats, end: float) -> None:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def once(client: httpx.AsyncClient, use: KeyUse) -> None:
        async with gate:
            left = end - time.monotonic()
            if left <= 0:
                return
            try:
                response = await client.post(
                    "/orders", json=use.body, timeout=min(10.0, left),
                    headers={"Idempotency-Key": use.key,
                             "X-Correlation-ID": f"gameday-replay-{use.key}"})
            except httpx.HTTPError as exc:
                last[use.key] = type(exc).__name__
                return
        if not is_final(response.status_code):
            last[use.key] = f"{response.status_code} {response.text[:80]}"
            return
        todo.pop(use.key, None)
        stats.answered += 1
        stats.replayed += is_replay_header({k.lower(): v for k, v in response.headers.items()})
        try:
            body = response.json()
        except ValueError:
            body = None
        got = order_id_of(body)
        if use.order_id and got and got != use.order_id:
            stats.new_orders += 1
            stats.examples.append(f"key {use.key}: first answer {use.order_id}, replay "
                                  f"answered {got}")

    pause = ROUND_PAUSE_S
    async with async_http_client(base_url, timeout=10.0) as client:
        while todo and time.monotonic() < end:
            await asyncio.gather(*(once(client, u) for u in list(todo.values())))
            if todo:
                await asyncio.sleep(min(pause, max(0.0, end - time.monotonic())))
                pause = min(pause * 2, MAX_PAUSE_S)

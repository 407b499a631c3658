"""The one long-running loop a component of a service owns (outbox publisher, order
recovery): started in the app's lifespan, cancelled and awaited on shutdown."""

from __future__ import annotations

import asyncio


class BackgroundLoop:
    task_name = "background"

    def __init__(self) -> None:
        self._task: asyncio.Task | None = None

    async def run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=self.task_name)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

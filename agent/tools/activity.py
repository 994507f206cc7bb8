"""Which tools are running, published as the agent participant's `kaiwa.tools` attribute.

One per call (on CallState): two calls in one process never see each other's tool names.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger("kaiwa.tools")

TOOLS_ATTRIBUTE = "kaiwa.tools"


class ToolActivity:
    def __init__(self) -> None:
        self.running: list[str] = []
        self._publish: Callable[[str], Awaitable[None]] | None = None

    def attach(self, publish: Callable[[str], Awaitable[None]]) -> None:
        self._publish = publish

    async def _update(self) -> None:
        if self._publish is None:
            return
        try:
            await self._publish(json.dumps(self.running))
        except Exception as e:  # the UI signal must never break a tool
            logger.debug("could not publish tool activity: %s", e)

    async def started(self, name: str) -> None:
        self.running.append(name)
        await self._update()

    async def finished(self, name: str) -> None:
        if name in self.running:
            self.running.remove(name)
        await self._update()

"""The current date and time in the business's time zone (KAIWA_TIMEZONE)."""

from __future__ import annotations

from typing import Any

from livekit.agents import RunContext

from .context import services
from .runtime import kaiwa_tool


@kaiwa_tool(roles=("staff", "caller"))
async def get_current_time(ctx: RunContext) -> dict[str, Any]:
    """The current date, weekday and time where the service desk is. Use it before
    scheduling or whenever the caller says "today", "tomorrow", "next Monday"."""
    svc = services(ctx)
    now = svc.now()
    return {
        "date": now.date().isoformat(),
        "weekday": now.strftime("%A"),
        "time": now.strftime("%H:%M"),
        "timezone": str(svc.tz),
        "iso": now.isoformat(timespec="seconds"),
    }


TOOLS = [get_current_time]

"""What the built-in tools need at run time: the Desk, the time zone, a few settings.

`build_tools(settings)` calls `configure(settings)` once per job; tools call `services()`.
With the thread job executor several jobs share one process and therefore one
`ToolServices`; that is fine because settings are per process anyway. Anything that must
be per conversation (pending confirmations) is keyed by the `AgentSession` instead.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from livekit.agents import ToolError

from desk import Desk, DeskError

from ..settings import Settings, SettingsError

logger = logging.getLogger("kaiwa.tools")

P = ParamSpec("P")
T = TypeVar("T")


@dataclass
class ToolServices:
    desk: Desk
    tz: ZoneInfo
    lab_delay_s: float

    def now(self) -> dt.datetime:
        return dt.datetime.now(self.tz)

    def today(self) -> dt.date:
        return self.now().date()


_services: ToolServices | None = None


def configure(settings: Settings) -> ToolServices:
    """Open the Desk (creating/migrating the file) and remember the time zone."""
    global _services
    try:
        tz = ZoneInfo(settings.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(
            f"KAIWA_TIMEZONE={settings.timezone} is not a known time zone"
        ) from None
    _services = ToolServices(
        desk=Desk.open(settings.desk_db), tz=tz, lab_delay_s=settings.lab_delay_s
    )
    return _services


def services() -> ToolServices:
    if _services is None:
        raise RuntimeError("tools used before build_tools(settings) configured them")
    return _services


async def desk_call(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a synchronous Desk method off the event loop; its refusals become ToolErrors.

    Every DeskError message is a sentence written for the caller (see desk.errors), so it
    goes to the model unchanged.
    """
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except DeskError as e:
        raise ToolError(str(e)) from None


def checked(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """A pure domain check (desk.validate) whose refusal becomes a ToolError."""
    try:
        return fn(*args, **kwargs)
    except DeskError as e:
        raise ToolError(str(e)) from None


def compact(d: dict[str, Any]) -> dict[str, Any]:
    """Drop empty values: shorter results read better aloud and cost fewer tokens."""
    return {k: v for k, v in d.items() if v not in (None, "", [], {})}

"""Per-call state: everything one conversation owns, on `AgentSession(userdata=CallState)`.

Nothing about a call lives in module globals: with `KAIWA_JOB_EXECUTOR=thread` several
calls share one process, and they must not see each other's running tools, tool names,
pending confirmations or customer. Tools reach this through `ctx.userdata`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from desk import Desk
from desk.guard import WriteGuard

from .settings import Settings, SettingsError
from .tools.access import Access
from .tools.activity import ToolActivity
from .tools.confirm import Confirmations

if TYPE_CHECKING:
    from .jobs import JobManager
    from .recorder import CallRecorder

logger = logging.getLogger("kaiwa.call")


@dataclass
class ToolServices:
    """What the built-in tools use: the desk, the time zone, the slow-lab delay."""

    desk: Desk
    tz: ZoneInfo
    lab_delay_s: float

    def now(self) -> dt.datetime:
        return dt.datetime.now(self.tz)

    def today(self) -> dt.date:
        return self.now().date()


def open_services(settings: Settings) -> ToolServices:
    """Open the Desk (creating/migrating the file) and resolve the time zone."""
    try:
        tz = ZoneInfo(settings.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(
            f"KAIWA_TIMEZONE={settings.timezone} is not a known time zone"
        ) from None
    return ToolServices(desk=Desk.open(settings.desk_db), tz=tz, lab_delay_s=settings.lab_delay_s)


@dataclass
class RunningCall:
    name: str
    task: asyncio.Task[Any]
    guard: WriteGuard
    cancelled_by_model: bool = False


@dataclass
class CallState:
    services: ToolServices
    # the desk's idempotency scope: the same across a crashed job's replacement, which
    # resumes the same Gemini conversation (and so sees the same call ids)
    scope: str = "local"
    language: str | None = None
    tool_timeout_s: float = 15.0
    access: Access = field(default_factory=Access)
    confirmations: Confirmations = field(default_factory=Confirmations)
    activity: ToolActivity = field(default_factory=ToolActivity)
    running: dict[str, RunningCall] = field(default_factory=dict)
    recorder: CallRecorder | None = None  # the call record (agent/recorder.py)
    jobs: JobManager | None = None  # background jobs, staff calls (agent/tools/jobs.py)

    @property
    def actor(self) -> str:
        """Who a change is recorded as ("changed by" in the case history)."""
        a = self.access
        return f"{a.role}:{a.identity}" if a.identity else f"agent ({a.role} call)"

    def idempotency_key(self, call_id: str, operation: str) -> str:
        return f"{self.scope}:{call_id}:{operation}"

    def cancel_calls(self, call_ids: list[str], *, by_model: bool = True) -> int:
        """Stop running tool calls: the task is cancelled and its write guard refuses COMMIT."""
        n = 0
        for call_id in call_ids:
            running = self.running.get(call_id)
            if running is None or running.task.done():
                continue
            running.cancelled_by_model = by_model
            running.guard.cancel()
            running.task.cancel()
            n += 1
        return n

    def cancel_all(self) -> int:
        """The call is ending: nothing may still write after it."""
        self.confirmations.close()  # pending actions dropped; the page's prompt cleared
        n = self.cancel_calls(list(self.running), by_model=False)
        if self.jobs is not None:
            n += self.jobs.cancel_all()  # their process groups are killed
        if n:
            logger.info("call ended with %d tool call(s) running; cancelled them", n)
        return n

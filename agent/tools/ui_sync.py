"""Best-effort screen updates from tools that aren't about the screen (get_case, ...).

They run in the background so a slow or absent screen never delays the spoken answer;
`show_case`/`clear_screen` (screen.py) await the push instead, because showing is their job.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from desk import Case

from . import ui
from .access import Access, masked

logger = logging.getLogger("kaiwa.ui")

_background: set[asyncio.Task[Any]] = set()


async def push_safely(method: str, payload: dict[str, Any]) -> bool:
    """ui.push that never raises (no job context, room gone, transport errors)."""
    try:
        return await ui.push(method, payload)
    except Exception as e:
        logger.debug("UI update %s not sent: %r", method, e)
        return False


def push_later(method: str, payload: dict[str, Any]) -> None:
    task = asyncio.get_running_loop().create_task(push_safely(method, payload))
    _background.add(task)  # keep a reference until done (asyncio holds tasks weakly)
    task.add_done_callback(_background.discard)


def show_case_later(case: Case, access: Access) -> None:
    push_later(ui.SHOW_CASE, {"case": masked(case.to_dict(), access)})


def status_changed_later(case_id: str, old: str, new: str) -> None:
    push_later(ui.STATUS_CHANGED, {"case_id": case_id, "from": old, "to": new})

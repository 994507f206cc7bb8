"""Tools that drive the caller's screen over LiveKit RPC (contract: ui.py, README).

A caller without a screen (a phone app that registers no handlers) is normal: the tools
then say so in their result and the conversation goes on.
"""

from __future__ import annotations

from typing import Any

from livekit.agents import RunContext

from . import ui
from .access import masked
from .context import state
from .runtime import kaiwa_tool
from .ui_sync import push_safely

_NO_SCREEN = "The caller's screen didn't show it (no screen or not connected); just say it."


@kaiwa_tool(timeout_s=ui.RPC_TIMEOUT_S + 5, roles=("staff", "caller"))
async def show_case(ctx: RunContext, case_id: str) -> dict[str, Any]:
    """Show a case on the caller's screen: a card with its details and status history.

    Args:
        case_id: The case number, e.g. R-1042.
    """
    from .desk import case_for  # the same access rule as get_case

    case = await case_for(ctx, case_id)
    card = masked(case.to_dict(), state(ctx).access)
    shown = await push_safely(ui.SHOW_CASE, {"case": card})
    return {"id": case.id, "shown": shown} | ({} if shown else {"say": _NO_SCREEN})


@kaiwa_tool(timeout_s=ui.RPC_TIMEOUT_S + 5, roles=("staff", "caller"))
async def clear_screen(ctx: RunContext) -> dict[str, Any]:
    """Remove the case card from the caller's screen (e.g. when the topic changes)."""
    cleared = await push_safely(ui.CLEAR, {})
    return {"cleared": cleared}


TOOLS = [show_case, clear_screen]

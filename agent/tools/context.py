"""What the built-in tools need at run time, reached through the call (ctx.userdata).

`services(ctx)` is the call's ToolServices (desk, time zone). `desk_call` runs a desk
method off the event loop with the tool call's idempotency key and write guard, so a
repeated call id returns the first result and a cancelled or timed-out call never commits.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from livekit.agents import RunContext, ToolError

from desk import DeskError

from .runtime import call_state, current_call

if TYPE_CHECKING:  # agent.call imports the tools package
    from ..call import CallState, ToolServices

logger = logging.getLogger("kaiwa.tools")

P = ParamSpec("P")
T = TypeVar("T")


def state(ctx: RunContext) -> CallState:
    found = call_state(ctx)
    if found is None:
        raise RuntimeError("tool run without a CallState on the session (AgentSession userdata)")
    return found


def services(ctx: RunContext) -> ToolServices:
    return state(ctx).services


@functools.cache
def _accepts(fn: Any, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


async def desk_call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a Desk method off the event loop; its refusals become ToolErrors.

    Inside a tool call, writes get the call's idempotency key and write guard. A cancel
    (the model withdrew the call, the tool timed out, the call ended) cancels the guard
    too: the thread may still be running, but it will not COMMIT.
    """
    call = current_call.get()
    target = getattr(fn, "__func__", fn)
    if call is not None:
        if _accepts(target, "guard"):
            kwargs.setdefault("guard", call.guard)
        if _accepts(target, "idempotency_key") and call.state is not None:
            kwargs.setdefault(
                "idempotency_key", call.state.idempotency_key(call.call_id, fn.__name__)
            )
        if _accepts(target, "actor") and call.state is not None:
            kwargs.setdefault("actor", call.state.actor)
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except asyncio.CancelledError:
        if call is not None:
            call.guard.cancel()
        raise
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

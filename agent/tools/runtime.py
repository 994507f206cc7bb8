"""Guarded function tools: what livekit-agents' `@function_tool` leaves to us.

Framework gaps closed here (see DESIGN.md):
- no per-tool timeout: each call runs under `asyncio.timeout`, and expiry becomes a
  `ToolError` the model can say;
- Gemini's `toolCallCancellation` is only logged by the plugin: running calls are kept
  by call id so the realtime session can cancel them (`cancel_calls`);
- unexpected exceptions reach the model as "An internal error occurred" with the
  traceback but no arguments in the log: we log the tool, call id and arguments, and
  give the model a sentence it can say;
- nothing tells the caller's screen that a tool is running: `ToolActivity` publishes the
  running tool names as the agent attribute `kaiwa.tools`.

Usage, one decorator per tool (tools are module-level functions taking `RunContext`):

    @kaiwa_tool(timeout_s=5)
    async def get_case(ctx: RunContext, case_id: str) -> dict: ...
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, ParamSpec, TypeVar

from livekit.agents import RunContext, StopResponse, ToolError, function_tool, llm

logger = logging.getLogger("kaiwa.tools")

P = ParamSpec("P")
R = TypeVar("R")

Behavior = Literal["blocking", "non_blocking"]
Scheduling = Literal["interrupt", "when_idle", "silent"]
TOOLS_ATTRIBUTE = "kaiwa.tools"


@dataclass(frozen=True)
class ToolPolicy:
    timeout_s: float | None = None  # None: the settings default (KAIWA_TOOL_TIMEOUT_S)
    behavior: Behavior | None = None  # None: the model-wide setting
    scheduling: Scheduling | None = None


# Per-tool policies by tool name, read by the realtime session when it declares tools.
POLICIES: dict[str, ToolPolicy] = {}
DEFAULT_TIMEOUT_S = 15.0


def set_default_timeout(seconds: float) -> None:
    global DEFAULT_TIMEOUT_S
    DEFAULT_TIMEOUT_S = seconds


class _Cancelled(Exception):
    """Marks a call that Gemini cancelled (toolCallCancellation)."""


# Running calls by call id; call ids are unique per Gemini session.
_running: dict[str, asyncio.Task[Any]] = {}
_cancelled_by_model: set[str] = set()


def cancel_calls(call_ids: list[str]) -> int:
    """Cancel running tool calls that the model withdrew; returns how many were running."""
    n = 0
    for call_id in call_ids:
        task = _running.get(call_id)
        if task is not None and not task.done():
            _cancelled_by_model.add(call_id)
            task.cancel()
            n += 1
    return n


class ToolActivity:
    """Publishes the names of running tools as the agent participant's `kaiwa.tools`."""

    def __init__(self) -> None:
        self._running: list[str] = []
        self._publish: Callable[[str], Awaitable[None]] | None = None

    def attach(self, publish: Callable[[str], Awaitable[None]]) -> None:
        self._publish = publish

    async def _update(self) -> None:
        if self._publish is None:
            return
        try:
            await self._publish(json.dumps(self._running))
        except Exception as e:  # the UI signal must never break a tool
            logger.debug("could not publish tool activity: %s", e)

    async def started(self, name: str) -> None:
        self._running.append(name)
        await self._update()

    async def finished(self, name: str) -> None:
        if name in self._running:
            self._running.remove(name)
        await self._update()


activity = ToolActivity()


def _find_ctx(args: tuple[Any, ...], kwargs: dict[str, Any]) -> RunContext | None:
    for v in (*args, *kwargs.values()):
        if isinstance(v, RunContext):
            return v
    return None


def _arguments(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The call's arguments by name (the framework passes them positionally), minus ctx."""
    try:
        bound = inspect.signature(fn).bind_partial(*args, **kwargs).arguments
    except TypeError:
        bound = {"args": args, **kwargs}
    return {k: v for k, v in bound.items() if not isinstance(v, RunContext)}


def kaiwa_tool(
    *,
    name: str | None = None,
    description: str | None = None,
    timeout_s: float | None = None,
    behavior: Behavior | None = None,
    scheduling: Scheduling | None = None,
    raw_schema: dict[str, Any] | None = None,
) -> Callable[[Callable[P, Awaitable[R]]], llm.FunctionTool | llm.RawFunctionTool]:
    """`@function_tool` plus timeout, cancellation, logging and UI activity.

    With `raw_schema` ({"name", "description", "parameters"}) the tool is a raw function
    tool (handler `async def f(raw_arguments: dict, ctx: RunContext)`), as used for MCP and
    OpenAPI tools.
    """

    def deco(fn: Callable[P, Awaitable[R]]) -> llm.FunctionTool | llm.RawFunctionTool:
        tool_name = str(raw_schema["name"]) if raw_schema else (name or fn.__name__)

        @functools.wraps(fn)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            ctx = _find_ctx(args, kwargs)
            call_id = ctx.function_call.call_id if ctx is not None else ""
            limit = timeout_s if timeout_s is not None else DEFAULT_TIMEOUT_S
            task = asyncio.current_task()
            if call_id and task is not None:
                _running[call_id] = task
            started = time.monotonic()
            await activity.started(tool_name)
            try:
                async with asyncio.timeout(limit):
                    return await fn(*args, **kwargs)
            except TimeoutError:
                logger.warning(
                    "tool timed out",
                    extra={"tool": tool_name, "call_id": call_id, "timeout_s": limit},
                )
                raise ToolError(
                    f"The {tool_name.replace('_', ' ')} step took longer than {limit:g} "
                    "seconds and was stopped. Tell the caller it is taking too long and "
                    "offer to try again."
                ) from None
            except asyncio.CancelledError:
                if call_id in _cancelled_by_model:
                    logger.info(
                        "tool cancelled by the model", extra={"tool": tool_name, "call_id": call_id}
                    )
                    raise StopResponse() from None
                raise
            except (ToolError, StopResponse):
                raise
            except Exception:
                arguments = _arguments(fn, args, kwargs)
                logger.exception(
                    "tool failed unexpectedly",
                    extra={
                        "tool": tool_name,
                        "call_id": call_id,
                        "arguments": repr(arguments)[:500],
                    },
                )
                raise ToolError(
                    f"The {tool_name.replace('_', ' ')} step failed because of an internal "
                    "problem. Apologise to the caller and offer to try again or take a note."
                ) from None
            finally:
                _running.pop(call_id, None)
                _cancelled_by_model.discard(call_id)
                await activity.finished(tool_name)
                logger.debug(
                    "tool done",
                    extra={
                        "tool": tool_name,
                        "call_id": call_id,
                        "ms": round((time.monotonic() - started) * 1000),
                    },
                )

        tool: llm.FunctionTool | llm.RawFunctionTool
        if raw_schema is not None:
            tool = function_tool(guarded, raw_schema=raw_schema)
        else:
            tool = function_tool(guarded, name=tool_name, description=description)
        POLICIES[tool_name] = ToolPolicy(
            timeout_s=timeout_s, behavior=behavior, scheduling=scheduling
        )
        return tool

    return deco

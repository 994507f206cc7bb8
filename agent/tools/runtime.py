"""Guarded function tools: what livekit-agents' `@function_tool` leaves to us.

Framework gaps closed here (see DESIGN.md):
- argument errors: the framework answers a bad argument with pydantic's text. kaiwa
  declares each Python tool as a raw tool with the schema the framework would have built
  (so Gemini sees the same declaration) and validates the arguments itself, answering with
  one sentence naming the field (sentences.py);
- no per-tool timeout: each call runs under `asyncio.timeout`; expiry becomes a spoken
  ToolError, and the call's `WriteGuard` stops its database write before COMMIT;
- cancellation: Gemini's `toolCallCancellation` (and the end of the call) cancel the
  running task *and* its write guard, so a cancelled tool never commits later in a thread;
- unexpected exceptions: logged with the tool and call id (arguments never: they carry
  personal data), and the model gets a sentence it can say;
- policy: timeout, blocking behaviour and response scheduling are declared with the tool
  and travel with it (`policy_of(tool)`); the worker hands them to the Gemini layer.

Per-call state (running calls, tool activity, language) is the call's `CallState`
(agent/call.py), reached through `ctx.userdata`.

Usage, one decorator per tool (module-level functions taking `RunContext`):

    @kaiwa_tool(timeout_s=5)
    async def get_case(ctx: RunContext, case_id: str) -> dict: ...
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import pydantic
from livekit.agents import RunContext, StopResponse, ToolError, function_tool, llm

from desk.guard import WriteGuard

from . import access, sentences
from .activity import TOOLS_ATTRIBUTE

if TYPE_CHECKING:
    from ..call import CallState

logger = logging.getLogger("kaiwa.tools")

Behavior = Literal["blocking", "non_blocking"]
Scheduling = Literal["interrupt", "when_idle", "silent"]
DEFAULT_TIMEOUT_S = 15.0

__all__ = ["TOOLS_ATTRIBUTE", "ToolPolicy", "current_call", "kaiwa_tool", "policy_of"]


@dataclass(frozen=True)
class ToolPolicy:
    timeout_s: float | None = None  # None: the call's default (KAIWA_TOOL_TIMEOUT_S)
    behavior: Behavior | None = None  # None: blocking (declared explicitly, see families.py)
    scheduling: Scheduling | None = None
    # who may call it (the participant's signed kaiwa.role); least privilege by default
    roles: tuple[str, ...] = ("staff",)


@dataclass(frozen=True)
class CallContext:
    """The tool call being executed, for code below the tool (desk_call)."""

    call_id: str
    tool: str
    guard: WriteGuard
    state: CallState | None


current_call: contextvars.ContextVar[CallContext | None] = contextvars.ContextVar(
    "kaiwa_tool_call", default=None
)

_POLICY_ATTR = "__kaiwa_policy__"


def policy_of(tool: Any) -> ToolPolicy:
    return getattr(tool, _POLICY_ATTR, None) or ToolPolicy()


def call_state(ctx: RunContext) -> CallState | None:
    try:
        state = ctx.userdata
    except (ValueError, AttributeError):
        return None
    from ..call import CallState

    return state if isinstance(state, CallState) else None


def _validator(fn: Callable[..., Any]) -> tuple[type[pydantic.BaseModel], dict[str, Any]]:
    model = llm.utils.function_arguments_to_pydantic_model(fn)
    return model, {name: f.annotation for name, f in model.model_fields.items()}


def kaiwa_tool(
    *,
    name: str | None = None,
    description: str | None = None,
    timeout_s: float | None = None,
    behavior: Behavior | None = None,
    scheduling: Scheduling | None = None,
    raw_schema: dict[str, Any] | None = None,
    roles: tuple[str, ...] = ("staff",),
) -> Callable[[Callable[..., Awaitable[Any]]], llm.RawFunctionTool]:
    """A raw function tool with kaiwa's validation, timeout, cancellation and policy.

    With `raw_schema` ({"name", "description", "parameters"}) the function already takes
    `(raw_arguments: dict, ctx: RunContext)` (MCP and OpenAPI tools) and validates itself.
    """
    policy = ToolPolicy(timeout_s=timeout_s, behavior=behavior, scheduling=scheduling, roles=roles)

    def deco(fn: Callable[..., Awaitable[Any]]) -> llm.RawFunctionTool:
        if raw_schema is not None:
            schema = raw_schema
            validate = None
        else:
            built = function_tool(fn, name=name or fn.__name__, description=description)
            schema = llm.utils.build_legacy_openai_schema(built, internally_tagged=True)
            schema = {k: schema[k] for k in ("name", "description", "parameters")}
            validate = _validator(fn)
        tool_name = str(schema["name"])
        ctx_param = _context_parameter(fn)

        async def handler(raw_arguments: dict[str, object], ctx: RunContext) -> Any:
            state = call_state(ctx)
            lang = sentences.lang_of(state.language if state else None)
            if state is not None and state.access.role not in policy.roles:
                # not offered to this role at all (build_tools); refused here too
                raise ToolError(access.STAFF_ONLY)
            if validate is None:
                kwargs: dict[str, Any] = {"raw_arguments": raw_arguments}
            else:
                kwargs = _checked_arguments(tool_name, validate, raw_arguments, lang)
            kwargs[ctx_param] = ctx
            return await _run(fn, tool_name, policy, ctx, state, lang, kwargs)

        # not functools.wraps: __wrapped__ would make the framework bind fn's signature
        handler.__doc__ = fn.__doc__
        tool = function_tool(handler, raw_schema=schema)
        setattr(tool, _POLICY_ATTR, policy)
        tool.__kaiwa_fn__ = fn  # type: ignore[attr-defined]  # the bare body (bench/latency.py)
        return tool

    return deco


def _is_text(annotation: Any) -> bool:
    return annotation is str or annotation == (str | None)


def _context_parameter(fn: Callable[..., Any]) -> str:
    """The name of the tool function's RunContext parameter ("ctx" by convention)."""
    for pname, param in inspect.signature(fn).parameters.items():
        if "RunContext" in str(param.annotation):
            return pname
    return "ctx"


def _checked_arguments(
    tool: str,
    validate: tuple[type[pydantic.BaseModel], dict[str, Any]],
    raw: dict[str, object],
    lang: sentences.Lang,
) -> dict[str, Any]:
    model, fields = validate
    if not isinstance(raw, dict):
        raise ToolError(sentences.bad_json(tool, lang))
    extra = sorted(k for k in raw if k not in fields)
    if extra:
        raise ToolError(sentences.unknown_arguments(tool, extra, list(fields), lang))
    # Gemini sends null for an omitted optional field: that means "not given"; and a number
    # where text is expected (a case number "1042") is taken as said
    given = {
        k: str(v)
        if isinstance(v, int | float) and not isinstance(v, bool) and _is_text(fields[k])
        else v
        for k, v in raw.items()
        if v is not None
    }
    try:
        parsed = model.model_validate(given)
    except pydantic.ValidationError as e:
        raise ToolError(sentences.invalid_arguments(tool, e, fields, lang)) from None
    return {k: getattr(parsed, k) for k in fields}


async def _run(
    fn: Callable[..., Awaitable[Any]],
    tool: str,
    policy: ToolPolicy,
    ctx: RunContext,
    state: CallState | None,
    lang: sentences.Lang,
    kwargs: dict[str, Any],
) -> Any:
    from ..call import RunningCall

    call_id = ctx.function_call.call_id
    limit = policy.timeout_s or (state.tool_timeout_s if state else DEFAULT_TIMEOUT_S)
    guard = WriteGuard(timeout_s=limit)
    task = asyncio.current_task()
    running = RunningCall(tool, task, guard) if task is not None else None
    if state is not None and running is not None:
        state.running[call_id] = running
    token = current_call.set(CallContext(call_id, tool, guard, state))
    started = time.monotonic()
    try:
        if state is not None:
            # inside the try: a cancel that lands while the page is told must still reach
            # `finally`, or the indicator would show the tool forever
            await state.activity.started(tool)
        async with asyncio.timeout(limit):
            return await fn(**kwargs)
    except TimeoutError:
        guard.cancel()
        logger.warning(
            "tool timed out", extra={"tool": tool, "call_id": call_id, "timeout_s": limit}
        )
        raise ToolError(sentences.timed_out(tool, limit, lang)) from None
    except asyncio.CancelledError:
        guard.cancel()
        if running is not None and running.cancelled_by_model:
            logger.info("tool cancelled by the model", extra={"tool": tool, "call_id": call_id})
            raise StopResponse() from None
        raise
    except (ToolError, StopResponse):
        raise
    except Exception as e:
        guard.cancel()
        # no arguments in the log: they carry names, phones and emails
        logger.error(
            "tool failed unexpectedly: %s",
            type(e).__name__,
            exc_info=True,
            extra={"tool": tool, "call_id": call_id},
        )
        raise ToolError(sentences.internal_error(tool, lang)) from None
    finally:
        current_call.reset(token)
        if state is not None:
            state.running.pop(call_id, None)
            await state.activity.finished(tool)
        logger.debug(
            "tool done",
            extra={
                "tool": tool,
                "call_id": call_id,
                "ms": round((time.monotonic() - started) * 1000),
            },
        )

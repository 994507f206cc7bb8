"""Page-declared UI actions: the page says what it can do; the model gets one tool per action.

Contract (web/README.md "Page-declared UI actions"):

1. The agent sets its attribute `kaiwa.ui.protocol` = "1" once it listens for pages.
2. The page calls RPC `kaiwa.ui.declare` on the agent with
       {"v": 1, "actions": [{"name": "filter", "description": "...",
                             "parameters": {<JSON schema, type object>}}, ...]}
   (at most MAX_DECLARATION_BYTES, MAX_ACTIONS actions); `{"v": 1, "actions": []}` withdraws
   them. The answer is {"ok": true, "tools": ["ui_filter", ...]} or an RPC error 2400.
3. Each action becomes the tool `ui_<name>` for this session only, plus `get_screen`
   (screen_context.py). A page that declares nothing gets no UI tools.
4. When the model calls `ui_<name>`, the worker checks the arguments against the declared
   schema, then calls RPC `kaiwa.ui.action` on the page with
       {"id": <function call id>, "action": "<name>", "args": {...}}
   bounded by ACTION_TIMEOUT_S. The page answers
       {"ok": true, "message": "...", "context": {...}?}            success
       {"ok": false, "error": "refused"|"invalid", "message": "..."}  refusal / bad input
   and the model gets a sentence it can speak (a refusal, a validation error, a page that
   did not answer or left are tool errors, also sentences).

A changed declaration mid-call goes through the framework's `Agent.update_tools`. On
Gemini that restarts the Live session (tools are fixed at setup) and resumes it with the
session-resumption handle, so the conversation is kept; the update therefore waits until
the agent is listening, nobody speaks and no tool runs, so it never cuts a reply short or
drops the greeting request. Before the session starts, the tools are simply set.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from livekit import rtc
from livekit.agents import Agent, AgentSession, RunContext, ToolError, llm

from .runtime import kaiwa_tool
from .screen_context import CONTEXT_RPC, GET_SCREEN, ScreenContext, get_screen_tool, rpc_error

if TYPE_CHECKING:
    from ..call import CallState

logger = logging.getLogger("kaiwa.ui")

PROTOCOL_ATTRIBUTE = "kaiwa.ui.protocol"
PROTOCOL_VERSION = "1"
DECLARE_RPC = "kaiwa.ui.declare"
ACTION_RPC = "kaiwa.ui.action"
TOOL_PREFIX = "ui_"
MAX_DECLARATION_BYTES = 12_000  # under LiveKit's 15 KiB RPC payload limit
MAX_ACTIONS = 16
MAX_DESCRIPTION = 400
MAX_SCHEMA_DEPTH = 4
MAX_ARGS_BYTES = 4000
ACTION_TIMEOUT_S = 5.0
SETTLE_S = 0.4  # quiet time before a mid-call tool update (it restarts the Gemini session)

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_TYPES = {"string", "integer", "number", "boolean", "array", "object"}
_SCHEMA_KEYS = {
    "type", "description", "enum", "properties", "required", "items",
    "minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems", "nullable",
}  # fmt: skip
_GONE = {
    rtc.RpcError.ErrorCode.UNSUPPORTED_METHOD,
    rtc.RpcError.ErrorCode.RECIPIENT_NOT_FOUND,
    rtc.RpcError.ErrorCode.RECIPIENT_DISCONNECTED,
}


class DeclarationError(ValueError):
    """A declaration the worker refuses; the message goes back to the page."""


@dataclass(frozen=True)
class ActionSpec:
    name: str
    description: str
    parameters: dict[str, Any]

    @property
    def tool_name(self) -> str:
        return TOOL_PREFIX + self.name

    def schema(self) -> dict[str, Any]:
        return {
            "name": self.tool_name,
            "description": f"On the user's screen: {self.description}",
            "parameters": self.parameters,
        }


# ------------------------------------------------------------------ declaration


def parse_declaration(payload: str) -> list[ActionSpec]:
    """The page's declaration as action specs; raises DeclarationError (bounded, typed)."""
    if len(payload.encode("utf-8", "replace")) > MAX_DECLARATION_BYTES:
        raise DeclarationError(f"declaration larger than {MAX_DECLARATION_BYTES} bytes")
    try:
        data = json.loads(payload or "{}")
    except ValueError:
        raise DeclarationError("declaration is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("actions"), list):
        raise DeclarationError('expected {"v": 1, "actions": [...]}')
    if data.get("v", 1) != 1:
        raise DeclarationError(f"unsupported declaration version {data.get('v')!r} (this is 1)")
    actions = data["actions"]
    if len(actions) > MAX_ACTIONS:
        raise DeclarationError(f"at most {MAX_ACTIONS} actions")
    specs: list[ActionSpec] = []
    seen: set[str] = set()
    for i, item in enumerate(actions):
        if not isinstance(item, dict):
            raise DeclarationError(f"action {i + 1} is not an object")
        name = item.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise DeclarationError(f"action {i + 1}: name must match {_NAME.pattern}")
        if name in seen:
            raise DeclarationError(f"action {name!r} declared twice")
        seen.add(name)
        desc = item.get("description", "")
        if not isinstance(desc, str):
            raise DeclarationError(f"action {name!r}: description must be text")
        params = item.get("parameters", {"type": "object", "properties": {}})
        try:
            clean = sanitize_schema(params, depth=0)
        except DeclarationError as e:
            raise DeclarationError(f"action {name!r}: {e}") from None
        if clean.get("type") != "object":
            raise DeclarationError(f"action {name!r}: parameters must be a schema of type object")
        clean.setdefault("properties", {})
        specs.append(ActionSpec(name, desc.strip()[:MAX_DESCRIPTION] or name, clean))
    return specs


def sanitize_schema(schema: Any, *, depth: int) -> dict[str, Any]:
    """Keep the JSON-schema subset Gemini function declarations accept; refuse the rest."""
    if depth > MAX_SCHEMA_DEPTH:
        raise DeclarationError("schema nested too deeply")
    if not isinstance(schema, dict):
        raise DeclarationError("a schema must be an object")
    kind = schema.get("type")
    if kind not in _TYPES:
        raise DeclarationError(f"type must be one of {sorted(_TYPES)}")
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key not in _SCHEMA_KEYS:
            continue  # $schema, additionalProperties, examples...: not for the model
        if key == "properties":
            if not isinstance(value, dict):
                raise DeclarationError("properties must be an object")
            props = {}
            for pname, sub in value.items():
                if not isinstance(pname, str) or not _NAME.match(pname):
                    raise DeclarationError(f"property name {str(pname)[:40]!r} is not allowed")
                props[pname] = sanitize_schema(sub, depth=depth + 1)
            out[key] = props
        elif key == "items":
            out[key] = sanitize_schema(value, depth=depth + 1)
        elif key == "required":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise DeclarationError("required must be a list of names")
            out[key] = list(value)
        elif key == "enum":
            if not isinstance(value, list) or not value or len(value) > 64:
                raise DeclarationError("enum must be a list of 1 to 64 values")
            out[key] = [v for v in value if isinstance(v, str | int | float)]
        elif key == "description":
            out[key] = str(value)[:MAX_DESCRIPTION]
        else:
            out[key] = value
    for req in out.get("required", []):
        if req not in out.get("properties", {}):
            raise DeclarationError(f"required {req!r} is not a property")
    return out


# ------------------------------------------------------------------ arguments


def check_arguments(spec: ActionSpec, args: Any) -> str | None:
    """A sentence naming what is wrong with the model's arguments, or None if they fit."""
    if not isinstance(args, dict):
        return f"{spec.tool_name} takes an object of arguments."
    props: dict[str, Any] = spec.parameters.get("properties", {})
    unknown = sorted(k for k in args if k not in props)
    if unknown:
        allowed = ", ".join(props) or "none"
        return f"{spec.tool_name} has no argument {', '.join(unknown)}; it takes: {allowed}."
    for req in spec.parameters.get("required", []):
        if args.get(req) is None:
            return f"{spec.tool_name} needs {req}."
    for key, value in args.items():
        if value is None:
            continue
        problem = _check_value(props[key], value)
        if problem:
            return f"{spec.tool_name}: {key} {problem}."
    if len(json.dumps(args, ensure_ascii=False).encode()) > MAX_ARGS_BYTES:
        return f"{spec.tool_name}: the arguments are too long."
    return None


def _check_value(schema: dict[str, Any], value: Any) -> str | None:
    kind = schema.get("type")
    ok = {
        "string": isinstance(value, str),
        "integer": (isinstance(value, int) and not isinstance(value, bool))
        or (isinstance(value, float) and value.is_integer()),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
        "array": isinstance(value, list),
        "object": isinstance(value, dict),
    }.get(str(kind), True)
    if not ok:
        return f"must be {'an' if str(kind)[0] in 'aeiou' else 'a'} {kind}"
    enum = schema.get("enum")
    if enum and value not in enum:
        return f"must be one of {', '.join(map(str, enum))}"
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            return f"must be at least {schema['minimum']}"
        if "maximum" in schema and value > schema["maximum"]:
            return f"must be at most {schema['maximum']}"
    if isinstance(value, str) and "maxLength" in schema and len(value) > schema["maxLength"]:
        return f"must be at most {schema['maxLength']} characters"
    return None


def answer_sentence(spec: ActionSpec, raw: str) -> tuple[bool, str]:
    """The page's RPC answer as (success, sentence for the model)."""
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return True, f"Done on the screen ({spec.name})."
    message = str(body.get("message") or "").strip()[:500]
    if body.get("ok") is True:
        return True, message or f"Done on the screen ({spec.name})."
    kind = body.get("error")
    if kind == "invalid":
        return False, f"The screen did not accept {spec.tool_name}: {message or 'invalid input'}."
    return False, f"The screen refused {spec.name}: {message or 'not possible right now'}."


# ------------------------------------------------------------------ per call


class PageUI:
    """One call's page: its declared actions, its screen context, and the tools they make."""

    def __init__(
        self,
        room: rtc.Room,
        agent: Agent,
        session: AgentSession[Any],
        page_identity: str,
        *,
        call: CallState | None = None,
        timeout_s: float = ACTION_TIMEOUT_S,
    ) -> None:
        self.room = room
        self.agent = agent
        self.session = session
        self.page_identity = page_identity
        self.call = call
        self.timeout_s = timeout_s
        self.screen = ScreenContext(page_identity)
        self.specs: list[ActionSpec] = []
        self.applied: tuple[str, ...] = ()  # tool names currently offered by us
        self.round_trips_ms: list[float] = []
        self._tools_by_name: dict[str, llm.Tool] = {}
        self._screen_tool = get_screen_tool(self.screen)
        self._apply_task: asyncio.Task[None] | None = None
        self.applied_event = asyncio.Event()

    # -- page → agent

    async def on_declare(self, data: rtc.RpcInvocationData) -> str:
        if data.caller_identity != self.page_identity:
            raise rpc_error("only the call's own page may declare actions")
        try:
            specs = parse_declaration(data.payload or "")
        except DeclarationError as e:
            raise rpc_error(str(e)) from None
        self.specs = specs
        self._tools_by_name = {s.tool_name: self._tool_for(s) for s in specs}
        names = [s.tool_name for s in specs] + ([GET_SCREEN] if specs else [])
        logger.info("page declared %d UI actions", len(specs), extra={"tools": names})
        self._schedule_apply()
        return json.dumps({"ok": True, "tools": names})

    # -- tools

    def tools(self) -> list[llm.Tool]:
        if not self.specs:
            return []
        return [*self._tools_by_name.values(), self._screen_tool]

    def _tool_for(self, spec: ActionSpec) -> llm.Tool:
        @kaiwa_tool(raw_schema=spec.schema(), roles=("staff", "caller"),
                    timeout_s=self.timeout_s + 2)  # fmt: skip
        async def run(raw_arguments: dict[str, object], ctx: RunContext) -> str:
            return await self.perform(spec, raw_arguments, ctx.function_call.call_id)

        return run

    async def perform(self, spec: ActionSpec, args: dict[str, object], call_id: str) -> str:
        """One bounded RPC to the page; its answer as a sentence (failures: ToolError)."""
        args = {k: v for k, v in (args or {}).items() if v is not None}
        problem = check_arguments(spec, args)
        if problem:
            raise ToolError(problem)
        payload = json.dumps({"id": call_id, "action": spec.name, "args": args},
                             ensure_ascii=False)  # fmt: skip
        started = time.monotonic()
        try:
            raw = await self.room.local_participant.perform_rpc(
                destination_identity=self.page_identity,
                method=ACTION_RPC,
                payload=payload,
                response_timeout=self.timeout_s,
            )
        except rtc.RpcError as e:
            if e.code == rtc.RpcError.ErrorCode.RESPONSE_TIMEOUT:
                raise ToolError(
                    f"The screen did not answer {spec.name} within {self.timeout_s:g} seconds; "
                    "it may not have happened. Ask the user to check their screen."
                ) from None
            if e.code in _GONE:
                raise ToolError(
                    "The user's screen is not connected right now, so nothing changed on it."
                ) from None
            raise ToolError(f"The screen refused {spec.name}: {e.message[:300]}") from None
        finally:
            self.round_trips_ms.append((time.monotonic() - started) * 1000)
        ok, sentence = answer_sentence(spec, raw)
        try:
            body = json.loads(raw)
            if isinstance(body, dict) and isinstance(body.get("context"), dict):
                self.screen.update(json.dumps(body["context"], ensure_ascii=False))
        except ValueError:
            pass
        if not ok:
            raise ToolError(sentence)
        return sentence

    # -- applying a declaration

    def _schedule_apply(self) -> None:
        if self._apply_task is None or self._apply_task.done():
            self._apply_task = asyncio.get_running_loop().create_task(self._apply_when_quiet())

    def _started(self) -> bool:
        try:
            self.agent.session  # noqa: B018  # raises until the agent's activity runs
        except RuntimeError:
            return False
        return True

    def _quiet(self) -> bool:
        busy = bool(self.call.running) if self.call is not None else False
        return (
            self.session.agent_state == "listening"
            and self.session.user_state != "speaking"
            and not busy
        )

    async def _apply_when_quiet(self) -> None:
        while True:
            if not self._started():
                break
            if self._quiet():
                await asyncio.sleep(SETTLE_S)
                if self._quiet():
                    break
            await asyncio.sleep(0.1)
        await self._apply()

    async def _apply(self) -> None:
        ours = set(self.applied) | {GET_SCREEN}
        base = [t for t in self.agent.tools if getattr(t, "id", None) not in ours]
        mine = self.tools()
        names = tuple(t.id for t in mine)
        if names == self.applied and not names:
            self.applied_event.set()
            return
        await self.agent.update_tools([*base, *mine])
        self.applied = names
        self.applied_event.set()
        logger.info("UI tools now offered: %s", ", ".join(names) or "none")


async def attach(
    room: rtc.Room,
    agent: Agent,
    session: AgentSession[Any],
    page_identity: str,
    *,
    call: CallState | None = None,
) -> PageUI:
    """Listen for the page's declarations and screen context; tell it we do (attribute)."""
    page = PageUI(room, agent, session, page_identity, call=call)
    room.local_participant.register_rpc_method(DECLARE_RPC, page.on_declare)
    room.local_participant.register_rpc_method(CONTEXT_RPC, page.screen.on_rpc)
    await room.local_participant.set_attributes({PROTOCOL_ATTRIBUTE: PROTOCOL_VERSION})
    return page

"""Calling kaiwa's function tools in-process, the way the framework does, without a room."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

from livekit import rtc
from livekit.agents import RunContext, llm
from livekit.agents.llm.utils import prepare_function_arguments

from agent.call import CallState, ToolServices, open_services
from agent.settings import Settings
from agent.tools import confirm
from agent.tools.access import Access

_services: ToolServices | None = None


def use_services(settings: Settings) -> ToolServices:
    """Open the desk of `settings` for the calls that follow (each gets its own CallState)."""
    global _services
    _services = open_services(settings)
    return _services


class FakeSession(rtc.EventEmitter[str]):
    """Stands in for AgentSession: tools use ctx.userdata (the CallState) and .on()."""

    def __init__(
        self,
        state: CallState | None = None,
        *,
        role: str = "staff",
        identity: str = "",
        **call: Any,
    ) -> None:
        super().__init__()
        self._global_run_state = None
        if state is None:
            assert _services is not None, "use_services(settings) first"
            state = CallState(
                services=_services,
                scope=f"test-{id(self)}",
                access=Access(role=role, identity=identity or f"{role}-tester"),
                **call,
            )
        self.userdata = state
        confirm.listen(self, state.confirmations)

    def caller_says(self, text: str) -> None:
        """The caller speaks (kaiwa's gate sees it start) and Gemini's final transcript comes."""
        self.userdata.confirmations.caller_started_speaking()
        time.sleep(0.001)  # the utterance starts after whatever happened just before
        self.emit("user_input_transcribed", MagicMock(transcript=text, is_final=True))

    def late_transcript(self, text: str) -> None:
        """A final transcript that arrives now, with no new speech start (a late tail)."""
        self.emit("user_input_transcribed", MagicMock(transcript=text, is_final=True))

    def caller_types(self, text: str) -> None:
        self.emit(
            "conversation_item_added",
            MagicMock(item=MagicMock(role="user", text_content=text)),
        )


def settings_for(db: Path, **env: str) -> Settings:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KAIWA_")}
    old = dict(os.environ)
    os.environ.clear()
    os.environ.update(clean | {"KAIWA_DESK_DB": str(db)} | env)
    try:
        return Settings(_env_file=None)  # type: ignore[call-arg]
    finally:
        os.environ.clear()
        os.environ.update(old)


_n = 0


async def call(tool: Any, session: FakeSession | None = None, **args: Any) -> Any:
    """Run a tool with `args` as Gemini's function call arguments, as the executor does."""
    global _n
    _n += 1
    name = tool.info.name
    fc = llm.FunctionCall(call_id=f"call-{_n}", name=name, arguments=json.dumps(args))
    ctx = RunContext(
        session=session or FakeSession(),  # type: ignore[arg-type]
        speech_handle=MagicMock(num_steps=1),
        function_call=fc,
    )
    fargs, fkwargs = prepare_function_arguments(fnc=tool, json_arguments=args, call_ctx=ctx)
    return await tool(*fargs, **fkwargs)

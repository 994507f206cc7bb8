"""Calling kaiwa's function tools in-process, the way the framework does, without a room."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

from livekit import rtc
from livekit.agents import RunContext, llm
from livekit.agents.llm.utils import prepare_function_arguments

from agent.settings import Settings


class FakeSession(rtc.EventEmitter[str]):
    """Stands in for AgentSession: tools only use .on() (confirmations) via ctx.session."""

    def __init__(self) -> None:
        super().__init__()
        self._global_run_state = None

    def caller_says(self, text: str) -> None:
        self.emit("user_input_transcribed", MagicMock(transcript=text, is_final=False))


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
    """Validate arguments against the tool's schema and run it, as the tool executor does."""
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

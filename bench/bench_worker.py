"""Bench-only worker entry: kaiwa's worker with pieces swapped by BENCH_* variables.

    python bench/bench_worker.py start      # started by bench.common when any BENCH_* is set

Only this file reads BENCH_* (product code has no switch for the benchmarks):

- BENCH_REALTIME=plugin: "stock", see below;
- BENCH_SYNC_TRANSCRIPTION=false: RoomIO's text output without transcript/audio sync
  (`TextOutputOptions(sync_transcription=False)`), to measure what the sync costs;
- BENCH_AUTO_GAIN_CONTROL=false: RoomIO's audio input without WebRTC's AGC
  (`AudioInputOptions(auto_gain_control=False)`; livekit-agents 1.8.9 turns it on whenever
  no noise cancellation is configured: one FFI `apm_process_stream` per input frame);
- BENCH_SESSION_HOST=false: `AgentSession.start(session_host=False)`: no SessionHost
  streaming session events to the room for a RemoteSession (console, simulators);
- BENCH_SCREEN_PUSH=instructions|turn: the two alternatives to the `get_screen` tool that
  `bench.screen_context` measures. Every screen-context update the page sends is also
  pushed to the model at once, through the framework's public calls: `instructions` =
  `Agent.update_instructions(base + screen)`; `turn` = `Agent.update_chat_ctx` with one
  more user message holding the screen (the plugin sends it as a client-content turn).

With BENCH_REALTIME=plugin everything is kaiwa's (settings, instructions, tools, room
options from the environment, recorder, lifecycle) except the realtime model: the
RealtimeModel of livekit-plugins-google as shipped, built from the same settings (model,
voice, language, VAD, compression, ...). None of agent/gemini's session overrides run: no
speech gate, no reply clock, no guarded connect, no 20 ms input chunking (the plugin's
fixed 50 ms). The swaps happen at import, outside the `__main__` guard, so job processes
started by spawn or forkserver get them too.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# run as a script, Python puts bench/ first on sys.path; the project root is wanted instead
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

import asyncio  # noqa: E402
import json  # noqa: E402

from livekit.agents import AgentSession  # noqa: E402
from livekit.agents.voice import room_io  # noqa: E402
from livekit.plugins.google.realtime import RealtimeModel  # noqa: E402

import agent.worker  # noqa: E402
from agent.gemini.model import plugin_options  # noqa: E402
from agent.settings import Settings  # noqa: E402
from agent.tools import page_actions  # noqa: E402


def stock_realtime_model(
    settings: Settings,
    *,
    instructions: str,
    resume_handle: str | None = None,
    hooks: Any = None,
) -> RealtimeModel:
    """The plugin's RealtimeModel with kaiwa's settings; `hooks` have nowhere to go."""
    kwargs = plugin_options(settings, instructions=instructions, resume_handle=resume_handle)
    return RealtimeModel(**kwargs)


if os.environ.get("BENCH_REALTIME") == "plugin":
    agent.worker.build_realtime_model = stock_realtime_model  # type: ignore[assignment]

_OFF = ("0", "false", "no")
if os.environ.get("BENCH_SESSION_HOST", "").lower() in _OFF:
    _start = AgentSession.start

    async def start_without_host(self: AgentSession[Any], *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("session_host", False)
        return await _start(self, *args, **kwargs)

    AgentSession.start = start_without_host  # type: ignore[method-assign]

_NO_SYNC = os.environ.get("BENCH_SYNC_TRANSCRIPTION", "").lower() in _OFF
_NO_AGC = os.environ.get("BENCH_AUTO_GAIN_CONTROL", "").lower() in _OFF
if _NO_SYNC or _NO_AGC:
    _room_options = agent.worker.room_options

    def bench_room_options(settings: Settings) -> room_io.RoomOptions:
        opts = _room_options(settings)
        if _NO_SYNC:
            opts.text_output = room_io.TextOutputOptions(sync_transcription=False)
        if _NO_AGC and isinstance(opts.audio_input, room_io.AudioInputOptions):
            opts.audio_input.auto_gain_control = False
        return opts

    agent.worker.room_options = bench_room_options

_SCREEN_PUSH = os.environ.get("BENCH_SCREEN_PUSH", "")
if _SCREEN_PUSH in ("instructions", "turn"):
    _page_init = page_actions.PageUI.__init__
    _pushes: set[asyncio.Task[None]] = set()

    def page_ui_that_pushes(self: page_actions.PageUI, *args: Any, **kwargs: Any) -> None:
        _page_init(self, *args, **kwargs)
        base = self.agent.instructions

        def push(screen: dict[str, Any]) -> None:
            text = json.dumps(screen, ensure_ascii=False, separators=(",", ":"))
            if _SCREEN_PUSH == "instructions":
                coro = self.agent.update_instructions(f"{base}\n\nThe user's screen now: {text}")
            else:
                chat = self.agent.chat_ctx.copy()
                chat.add_message(role="user", content=f"[screen] {text}")
                coro = self.agent.update_chat_ctx(chat)
            task = asyncio.get_running_loop().create_task(coro)
            _pushes.add(task)
            task.add_done_callback(_pushes.discard)

        self.screen.listeners.append(push)

    page_actions.PageUI.__init__ = page_ui_that_pushes  # type: ignore[method-assign]

if __name__ == "__main__":
    from agent.agent import main

    main()

"""Push-to-talk: the caller's audio reaches Gemini only while the talk key is held.

A reception counter has bystanders: nothing said between presses may become a turn. With
KAIWA_TURN_MODE=push_to_talk a staff call (the console) runs with Gemini's automatic
activity detection off (agent/gemini/model.py) and AgentSession turn detection "manual".
The page calls two RPCs, and the worker uses only public calls of the framework:

- `kaiwa.ptt.start` (key pressed): `session.interrupt()` stops the agent's speech, kaiwa's
  realtime session opens the activity (`hold()`: activityStart), then
  `session.input.set_audio_enabled(True)` lets the room's audio through;
- `kaiwa.ptt.end` (key released): `session.commit_user_turn(skip_reply=True)` reaches the
  realtime session's `commit_audio()` (activityEnd, which Gemini answers: no second reply
  request), then `session.input.set_audio_enabled(False)`: between presses RoomIO drops
  the frames, so no audio at all is sent to Gemini.

The plugin's own `start_user_activity()` can't be the key: the framework calls it on every
interrupt, including before each reply Gemini starts by itself (see agent/gemini/session.py).

The mode is never the page's: a page cannot turn a counter back into an open mic. It is the
worker's (KAIWA_TURN_MODE, for staff calls) or the credential's: the token server signs
`kaiwa.turn_mode=push_to_talk` into the tokens of a push-to-talk device (KAIWA_PTT_IDENTITIES
or a bearer key marked `ptt`), staff or caller, so one worker serves open-mic desks and a
counter with bystanders at once. The worker publishes the mode on its own participant as
`kaiwa.turn_mode` so the page (console, caller page, widget) shows its talk button.
A press held longer than MAX_HOLD_S (a page that died with the key down)
is released by the worker.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any

from livekit import rtc
from livekit.agents import NOT_GIVEN, AgentSession, NotGivenOr, TurnHandlingOptions

from token_server.roles import push_to_talk_of

from .gemini import KaiwaRealtimeSession
from .settings import Settings
from .tools.access import Access

logger = logging.getLogger("kaiwa.ptt")

PTT_START_RPC = "kaiwa.ptt.start"
PTT_END_RPC = "kaiwa.ptt.end"
TURN_MODE_ATTRIBUTE = "kaiwa.turn_mode"
MAX_HOLD_S = 60.0


def push_to_talk_for(
    settings: Settings, access: Access, attributes: Mapping[str, str] | None = None
) -> bool:
    """This call is push-to-talk: the participant's signed credential says so, or the
    worker's KAIWA_TURN_MODE does for staff calls."""
    if push_to_talk_of(attributes):
        return True
    return settings.turn_mode == "push_to_talk" and access.staff


def turn_handling(push_to_talk: bool) -> NotGivenOr[TurnHandlingOptions]:
    """AgentSession's turn handling: manual turns in push-to-talk, else the default."""
    return TurnHandlingOptions(turn_detection="manual") if push_to_talk else NOT_GIVEN


class PushToTalk:
    def __init__(self, session: AgentSession[Any], identity: str) -> None:
        self._session = session
        self._identity = identity
        self.held = False
        self._release: asyncio.TimerHandle | None = None

    def prepare(self) -> None:
        """Before session.start: the room's audio stays off until the first press."""
        self._session.input.set_audio_enabled(False)

    def attach(self, room: rtc.Room) -> None:
        lp = room.local_participant
        lp.register_rpc_method(PTT_START_RPC, self._on_start)
        lp.register_rpc_method(PTT_END_RPC, self._on_end)

    def press(self) -> None:
        if self.held:
            return
        # stop the agent's speech, then open the activity (activityStart) before any audio
        self._session.interrupt(force=True)
        rt = self._session.current_agent.realtime_llm_session
        if not isinstance(rt, KaiwaRealtimeSession):
            raise RuntimeError("push-to-talk needs kaiwa's realtime session")
        rt.hold()
        self.held = True
        self._session.input.set_audio_enabled(True)
        self._release = asyncio.get_running_loop().call_later(MAX_HOLD_S, self._stuck)

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        if self._release is not None:
            self._release.cancel()
            self._release = None
        # activityEnd; Gemini answers it. Then no more audio until the next press.
        fut = self._session.commit_user_turn(skip_reply=True)
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._session.input.set_audio_enabled(False)

    def _stuck(self) -> None:
        logger.warning("talk key held for %.0fs; releasing it", MAX_HOLD_S)
        self._release = None
        self.release()

    def _answer(self, data: rtc.RpcInvocationData, action: Any) -> str:
        if data.caller_identity != self._identity:
            return json.dumps({"ok": False, "error": "not this call's participant"})
        try:
            action()
        except RuntimeError as e:  # the session is not running (yet or any more)
            return json.dumps({"ok": False, "error": str(e)})
        return json.dumps({"ok": True, "held": self.held})

    async def _on_start(self, data: rtc.RpcInvocationData) -> str:
        return self._answer(data, self.press)

    async def _on_end(self, data: rtc.RpcInvocationData) -> str:
        return self._answer(data, self.release)

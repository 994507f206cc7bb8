"""kaiwa's Gemini realtime session: the plugin's session with short overrides.

The plugin's code path (`livekit.plugins.google.realtime.RealtimeSession`) is kept; each
override below is a few lines that hand the decision to a plain class of this package
(unit-tested without a socket) where the plugin stops short (DESIGN.md, "Where the
framework stops"):

- connect: the plugin waits forever for `setupComplete` and gives up at once when a first
  setup fails. `_guarded_connect` bounds the setup wait and paces attempts with
  `ReconnectBudget` (backoff from the first retry), then hands the plugin a
  `LiveConnection` proxy that observes every message and routes tool responses;
- no silent call: `ReplyClock` says when a reply is due (the caller's speech ended, as seen
  by `SpeechGate`; a tool response, client turn or generate_reply was sent) and the
  watchdog recovers when nothing follows: resume with the latest handle, replay the turn
  the resume lost (or ask the caller to repeat), within the reconnect budget;
- exactly-once tools: `ToolLedger` tracks every call id; a response goes to the server that
  issued the id, as text to a resumed server that never did, or nowhere if already given.
  Only audio is carried across restarts here: the plugin itself re-sends unsent function
  outputs from its resumption diff;
- GoAway (a TODO in the plugin): `GoAwayPlan` moves when the reply has ended and no call is
  outstanding, never past `timeLeft` minus a margin;
- per-tool behaviour and scheduling from the tools' policies (passed in by the worker);
  `toolCallCancellation` reaches the running tools (`on_tools_cancelled`);
- input chunking: `input_chunk_ms` instead of the plugin's fixed 50 ms;
- trailing audio on tool turns: words Gemini streams after a `toolCall` stay in the same
  reply instead of starting a generation that interrupts the agent's own playout.

Private plugin names used here are listed, with the reason, in `private.py`, which checks
them at worker start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from google.genai import types
from livekit import rtc
from livekit.agents import llm, utils
from livekit.plugins.google.realtime import realtime_api
from livekit.plugins.google.realtime.realtime_api import (
    INPUT_AUDIO_CHANNELS,
    INPUT_AUDIO_SAMPLE_RATE,
)

from ..faults import record_recovery
from .budget import BudgetExhausted, ReconnectBudget
from .closes import close_code, describe_close
from .connection import LiveConnection
from .families import declared_behavior, family_of
from .goaway import GoAwayPlan, seconds
from .ledger import ToolLedger
from .reply_clock import ReplyClock
from .speech import GateOptions, SpeechGate, TurnAudio

logger = logging.getLogger("kaiwa.realtime")

_BEHAVIOR = {"blocking": types.Behavior.BLOCKING, "non_blocking": types.Behavior.NON_BLOCKING}
_SCHEDULING = {
    "interrupt": types.FunctionResponseScheduling.INTERRUPT,
    "when_idle": types.FunctionResponseScheduling.WHEN_IDLE,
    "silent": types.FunctionResponseScheduling.SILENT,
}
# Close codes that no retry can fix on a first connection (bad key, unknown model).
_PERMANENT_ON_FIRST_CONNECT = {1007, 1008}

CONTINUE = (
    "[kaiwa] The connection dropped and was restored. If your last answer was cut off or "
    "not given, give it now briefly; otherwise wait for the caller."
)
ASK_TO_REPEAT = (
    "[kaiwa] The caller's last words were lost in a connection problem. Apologise in one "
    "short sentence in the caller's language and ask them to say it again."
)

# how long after a reply a transcript-only message still counts as that turn's late tail
LATE_TRANSCRIPT_S = 5.0

# kept for importers of the old name
ReconnectBudgetExhausted = BudgetExhausted


@dataclass(frozen=True)
class ToolPolicyView:
    """What the Gemini layer needs of a tool's policy (agent/tools/runtime.ToolPolicy)."""

    behavior: str | None = None
    scheduling: str | None = None


@dataclass(frozen=True)
class ResilienceOptions:
    setup_timeout_s: float = 10.0
    stall_timeout_s: float = 6.0  # a reply due and no server message: recover
    max_connects: int = 6  # connection attempts allowed within `connect_window_s`
    connect_window_s: float = 60.0
    backoff_base_s: float = 0.25
    backoff_cap_s: float = 4.0
    go_away_margin_s: float = 2.0
    audio_buffer_s: float = 5.0
    # After a tool call, how long to keep the reply's audio open for trailing words. The
    # tool output waits for that audio to end, so this is paid on every spoken tool turn
    # (bench/results/latency.md); turns without audio close at once.
    trailing_audio_grace_s: float = 0.3
    gate: GateOptions = field(default_factory=GateOptions)


@dataclass
class CallHooks:
    """What the session tells the call about (agent/call.py); all optional."""

    on_resumption_handle: Callable[[str], None] | None = None
    on_tools_cancelled: Callable[[list[str]], Any] | None = None
    on_caller_speech_started: Callable[[float], None] | None = None
    # the caller's end of speech (time.monotonic() of the last voiced audio), as the gate saw it
    on_caller_speech_ended: Callable[[float], None] | None = None
    tool_policies: Mapping[str, ToolPolicyView] = field(default_factory=dict)


class KaiwaRealtimeSession(realtime_api.RealtimeSession):
    def __init__(self, realtime_model: KaiwaRealtimeModel) -> None:
        super().__init__(realtime_model)
        self._kopts = realtime_model.resilience
        self._hooks = realtime_model.hooks
        chunk = INPUT_AUDIO_SAMPLE_RATE * realtime_model.input_chunk_ms // 1000
        self._chunk_s = realtime_model.input_chunk_ms / 1000
        self._bstream = utils.audio.AudioByteStream(
            INPUT_AUDIO_SAMPLE_RATE, INPUT_AUDIO_CHANNELS, samples_per_channel=chunk
        )
        # Route the plugin's `connect()` through our guard (the main task starts on the
        # next loop iteration, so swapping the client here is in time).
        real_client = self._client
        self._real_connect = real_client.aio.live.connect
        self._client = SimpleNamespace(  # type: ignore[assignment]
            aio=SimpleNamespace(
                live=SimpleNamespace(connect=self._guarded_connect),
                aclose=real_client.aio.aclose,
            )
        )
        k = self._kopts
        self.budget = ReconnectBudget(
            max_attempts=k.max_connects,
            window_s=k.connect_window_s,
            base_s=k.backoff_base_s,
            cap_s=k.backoff_cap_s,
        )
        self.clock = ReplyClock(k.stall_timeout_s)
        self.ledger = ToolLedger()
        self.gate = SpeechGate(k.gate)
        self._turn_audio = TurnAudio(k.gate.keep_s, self._chunk_s)
        self._family = family_of(realtime_model.model)
        self._ever_connected = False
        self._down_since: float | None = None
        self._down_reason = ""
        self._lost_turn_at: float | None = None  # audio time of a turn a resume must replay
        self._resume_action: str | None = None  # "replay" | "continue", done on reconnect
        self._last_action: str | None = None
        self._recoveries_for_turn = 0
        self._audio_backlog: deque[types.LiveClientRealtimeInput] = deque(
            maxlen=max(1, int(k.audio_buffer_s / self._chunk_s))
        )
        self._go_away: GoAwayPlan | None = None
        self._go_away_task: asyncio.Task[None] | None = None
        self._trailing_timer: asyncio.TimerHandle | None = None
        self._trailing_gen: Any = None  # a tool turn's generation still taking audio
        self._gen_had_audio = False
        self._reply_done_at: float | None = None
        self._speech_started_at: float | None = None
        # push-to-talk: None with Gemini's VAD; else whether the talk key's activity is open
        self._held: bool | None = False if realtime_model.manual_activity else None
        self._watchdog = asyncio.create_task(self._stall_watchdog(), name="kaiwa-stall-watchdog")

    # ------------------------------------------------------------------ connect guard

    @contextlib.asynccontextmanager
    async def _guarded_connect(
        self, *, model: str, config: types.LiveConnectConfig
    ) -> AsyncIterator[LiveConnection]:
        self._apply_tool_policies(config)
        async with contextlib.AsyncExitStack() as stack:
            session = await self._connect_with_retries(stack, model, config)
            yield LiveConnection(
                session,
                ledger=self.ledger,
                on_message=self._on_server_message,
                on_text_sent=lambda: self.clock.due("tool_response", time.monotonic()),
            )

    async def _connect_with_retries(
        self, stack: contextlib.AsyncExitStack, model: str, config: types.LiveConnectConfig
    ) -> Any:
        while True:
            self._stop_if_closing()
            try:
                delay = self.budget.next_delay(time.monotonic())
            except BudgetExhausted:
                down = time.monotonic() - (self._down_since or time.monotonic())
                logger.error("Gemini kept failing; giving up on this call")
                record_recovery(
                    "gemini_gave_up", down, attempts=len(self.budget.attempts), ok=False
                )
                raise
            if delay:
                await asyncio.sleep(delay)
            self.budget.attempted(time.monotonic())
            try:
                async with asyncio.timeout(self._kopts.setup_timeout_s):
                    session = await stack.enter_async_context(
                        self._real_connect(model=model, config=config)
                    )
            except TimeoutError:
                self._stop_if_closing()
                logger.warning(
                    "Gemini did not answer the session setup within %.0fs; retrying",
                    self._kopts.setup_timeout_s,
                )
                self._note_down("setup_timeout")
                continue
            except Exception as e:
                # a cancel (session closing) can surface from the socket library as an
                # ordinary error; retrying then would keep the closing session alive
                self._stop_if_closing()
                code = close_code(e)
                logger.error("Gemini session setup failed: %s", describe_close(code, str(e)))
                if not self._ever_connected and code in _PERMANENT_ON_FIRST_CONNECT:
                    raise  # wrong key/model: retrying cannot help, fail at start
                self._note_down(f"setup_failed_{code or 'error'}")
                continue
            self._on_connected()
            return session

    def _stop_if_closing(self) -> None:
        task = asyncio.current_task()
        if self._msg_ch.closed or (task is not None and task.cancelling()):
            raise asyncio.CancelledError()

    def _note_down(self, reason: str) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            self._down_reason = reason

    def _on_connected(self) -> None:
        now = time.monotonic()
        self.ledger.connected()
        self.clock.server_message(now)
        if self._ever_connected:
            record_recovery(
                "gemini_reconnect",
                now - (self._down_since or now),
                cause=self._down_reason or "restart",
                resumed_with_handle=self._session_resumption_handle is not None,
                buffered_audio_chunks=len(self._audio_backlog),
            )
            self._resend_lost_turn()
        self._ever_connected = True
        self._down_since = None
        self._down_reason = ""
        self._go_away = None
        if self._go_away_task is not None and not self._go_away_task.done():
            self._go_away_task.cancel()  # that GoAway was for a connection already gone

    # ------------------------------------------------------------------ what arrives

    def _on_server_message(self, msg: types.LiveServerMessage) -> None:
        now = time.monotonic()
        self.clock.server_message(now)
        upd = msg.session_resumption_update
        if upd is not None and upd.resumable and upd.new_handle:
            self.ledger.handle_received()
            if self._hooks.on_resumption_handle is not None:
                self._hooks.on_resumption_handle(upd.new_handle)
        if msg.tool_call is not None:
            for call in msg.tool_call.function_calls or []:
                if call.id:
                    self.ledger.issued(call.id, call.name or "")
            self.clock.reply_ended(now)  # the turn now waits on our tools
        sc = msg.server_content
        if sc is not None:
            spoke = bool(
                (sc.model_turn and sc.model_turn.parts)
                or (sc.output_transcription and sc.output_transcription.text)
            )
            if spoke:
                self.clock.reply_started(now)
                self._lost_turn_at = None
                self._recoveries_for_turn = 0
            # generationComplete: all of the reply is out (turnComplete waits for playback)
            ended = sc.turn_complete or sc.generation_complete or sc.interrupted
            if ended or sc.interaction_status is not None:
                self.clock.reply_ended(now)
                self._lost_turn_at = None
                self._recoveries_for_turn = 0

    # ------------------------------------------------------------------ what goes out

    def push_audio(self, frame: rtc.AudioFrame) -> None:
        edge = self.gate.push(frame.data, frame.samples_per_channel / frame.sample_rate)
        if edge == "started":
            self._speech_started_at = time.monotonic()
            self.clock.caller_speaking()
            if self._hooks.on_caller_speech_started is not None:
                self._hooks.on_caller_speech_started(time.monotonic())
        elif edge == "ended":
            if self._held is None:  # push-to-talk: the reply is due at the release instead
                self.clock.due("caller_turn", time.monotonic())
            if self._hooks.on_caller_speech_ended is not None:
                silent_for = self.gate.now - (self.gate.turn_end or self.gate.now)
                self._hooks.on_caller_speech_ended(time.monotonic() - silent_for)
        super().push_audio(frame)

    # push-to-talk (agent/push_to_talk.py). The talk key opens the activity (`hold`);
    # AgentSession.commit_user_turn() -> commit_audio() ends it, and Gemini answers that
    # (no extra client turn). The framework calls start_user_activity() on every interrupt,
    # including just before each reply Gemini starts on its own: an activityStart there
    # would cut the reply to the release off, so in push-to-talk only the key opens one.
    def start_user_activity(self) -> None:
        if self._held is None:
            super().start_user_activity()

    def hold(self) -> None:
        if self._held is False:
            self._held = True
            self.clock.caller_speaking()
            start = types.ActivityStart()
            self._send_client_event(types.LiveClientRealtimeInput(activity_start=start))

    def commit_audio(self) -> None:
        if self._held is None:
            return super().commit_audio()
        if self._held:
            self._held = False
            self._send_client_event(types.LiveClientRealtimeInput(activity_end=types.ActivityEnd()))
            self.clock.due("caller_turn", time.monotonic())  # Gemini answers the released turn

    def _send_client_event(self, event: Any) -> None:
        if isinstance(event, types.LiveClientRealtimeInput) and event.audio is not None:
            if self._active_session is None:
                # no connection: keep a bounded tail of the caller's speech for later
                self._audio_backlog.append(event)
                return
            while self._audio_backlog:
                super()._send_client_event(self._audio_backlog.popleft())
            self._turn_audio.add(self.gate.now, event)
        elif isinstance(event, types.LiveClientToolResponse):
            self._close_trailing()  # Gemini's reply to the result is a new generation
            if self._schedule_tool_responses(event):
                self.clock.due("tool_response", time.monotonic())
        elif isinstance(event, types.LiveClientContent) and event.turn_complete:
            self.clock.due("client_turn", time.monotonic())
        super()._send_client_event(event)

    # ------------------------------------------------------------------ restarts

    def _mark_restart_needed(self, on_error: bool = False) -> None:
        if self._session_should_close.is_set():
            return
        if on_error:
            err = self._session_error
            self._note_down(type(err).__name__ if err else "error")
            if err is not None:
                logger.warning(
                    "Gemini connection lost (%s); reconnecting with the resumption handle",
                    describe_close(close_code(err), str(err)),
                )
            # the resumed server has nothing the caller said after its handle
            if self._resume_action is None and self._caller_turn_unanswered():
                self._plan_replay()
        old = self._msg_ch
        carried: list[Any] = []
        # The plugin swaps in a fresh send queue. Keep the caller's audio; function outputs
        # are re-sent by the plugin from its resumption diff (and routed by the ledger).
        while not old.empty():
            msg = old.recv_nowait()
            if isinstance(msg, types.LiveClientRealtimeInput) and msg.audio is not None:
                carried.append(msg)
        super()._mark_restart_needed(on_error=on_error)
        if self._resume_action != "replay":  # a replay re-sends these itself
            for msg in carried[-(self._audio_backlog.maxlen or 1) :]:
                self._msg_ch.send_nowait(msg)

    def _caller_turn_unanswered(self) -> bool:
        return self.gate.speaking or self.clock.reason in ("caller_turn", "recovery")

    def _resend_lost_turn(self) -> None:
        """After a resume, give Gemini what its handle did not cover, so the caller is answered.

        Real Gemini keeps nothing sent after the handle it resumes from: an unanswered caller
        turn is replayed from the references kept in `TurnAudio` (queued audio is dropped
        first so nothing goes twice or out of order); a second recovery for the same turn
        asks the caller to repeat instead. A lost client turn or a reply cut off mid-way
        gets a short instruction to carry on.
        """
        action, self._resume_action = self._resume_action, None
        if action is None:
            return
        self._last_action = action
        if action == "replay" and self._lost_turn_at is not None:
            self._recoveries_for_turn += 1
            if self._recoveries_for_turn == 1:
                start = self._lost_turn_at - self._kopts.gate.pre_roll_s
                others = []
                while not self._msg_ch.empty():
                    msg = self._msg_ch.recv_nowait()
                    if not (isinstance(msg, types.LiveClientRealtimeInput) and msg.audio):
                        others.append(msg)
                chunks = self._turn_audio.since(start)
                logger.info("re-sending the caller's unanswered turn (%d chunks)", len(chunks))
                for msg in [*chunks, *others]:
                    super()._send_client_event(msg)
                self.clock.due("recovery", time.monotonic())
                return
            logger.warning("the replayed turn got no answer either; asking the caller to repeat")
            self._send_instruction(ASK_TO_REPEAT)
        elif action == "continue":
            self._send_instruction(CONTINUE)
        self._lost_turn_at = None

    def _send_instruction(self, text: str) -> None:
        super()._send_client_event(
            types.LiveClientContent(
                turns=[types.Content(role="user", parts=[types.Part(text=text)])],
                turn_complete=True,
            )
        )
        self.clock.due("recovery", time.monotonic())

    # ------------------------------------------------------------------ watchdog

    async def _stall_watchdog(self) -> None:
        period = min(0.5, self._kopts.stall_timeout_s / 4)
        while not self._msg_ch.closed:
            await asyncio.sleep(period)
            if self._active_session is None or self._session_should_close.is_set():
                continue
            if self.gate.speaking and not self.clock.generating:
                continue  # Gemini rightly waits while the caller talks; the end re-arms it
            late = self.clock.overdue(time.monotonic())
            if late is None:
                continue
            logger.warning(
                "Gemini sent nothing for %.1fs while a reply was due (%s); reconnecting with "
                "the resumption handle",
                late.silent_for,
                late.reason,
            )
            if late.reason == "caller_turn" or (
                late.reason == "recovery" and self._last_action == "replay"
            ):
                self._plan_replay()  # a second time for the same turn asks to repeat
            elif late.reason in ("client_turn", "mid_reply", "recovery"):
                self._resume_action = "continue"
            self.clock.reply_ended(time.monotonic())
            self._note_down(f"stall_{late.reason}")
            self._session_error = TimeoutError(f"Gemini stalled for {late.silent_for:.1f}s")
            self._mark_restart_needed(on_error=True)

    def _plan_replay(self) -> None:
        self._resume_action = "replay"
        self._lost_turn_at = (
            self.gate.turn_start if self.gate.turn_start is not None else self.gate.now
        )

    def _start_new_generation(self) -> None:
        self._gen_had_audio = False
        super()._start_new_generation()

    def _mark_current_generation_done(self) -> None:
        super()._mark_current_generation_done()
        self._reply_done_at = time.monotonic()
        # also on a lost connection: a reply that died with its socket is not "streaming"
        self.clock.generating = False

    # ------------------------------------------------------------------ GoAway

    def _handle_go_away(self, go_away: types.LiveServerGoAway) -> None:
        time_left = seconds(go_away.time_left)
        logger.info(
            "Gemini GoAway: %.1fs left; moving when the reply and tools are done", time_left
        )
        if self._go_away_task is None or self._go_away_task.done():
            self._go_away = GoAwayPlan.start(
                time.monotonic(), time_left, self._kopts.go_away_margin_s
            )
            self._go_away_task = asyncio.create_task(self._move_when_ready(self._go_away))

    def _generating(self) -> bool:
        gen = self._current_generation
        return (gen is not None and not gen._done) or self._trailing_gen is not None

    async def _move_when_ready(self, plan: GoAwayPlan) -> None:
        while True:
            now = time.monotonic()
            outstanding = len(self.ledger.outstanding())
            generating = self._generating()
            if plan.should_move(now, generating=generating, outstanding_calls=outstanding):
                if plan.forced(now, generating=generating, outstanding_calls=outstanding):
                    logger.warning(
                        "GoAway time is up with %d tool call(s) outstanding; moving anyway "
                        "(their results will be given to the new session as text)",
                        outstanding,
                    )
                break
            await asyncio.sleep(0.05)
        self._note_down("go_away")
        if self._caller_turn_unanswered():
            self._plan_replay()  # the new connection has nothing said after the handle
        # like the plugin's own GoAway restart: close and resume, keeping the send queue
        self._session_should_close.set()

    # ------------------------------------------------------------------ tools

    def _apply_tool_policies(self, config: types.LiveConnectConfig) -> None:
        """Every tool declared with its own behaviour (3.8 would default all to async)."""
        for tool in config.tools or []:
            if not isinstance(tool, types.Tool):
                continue
            for decl in tool.function_declarations or []:
                policy = self._hooks.tool_policies.get(decl.name or "")
                behavior = declared_behavior(policy.behavior if policy else None)  # type: ignore[arg-type]
                decl.behavior = _BEHAVIOR[behavior]

    def _schedule_tool_responses(self, event: types.LiveClientToolResponse) -> bool:
        """Per-tool scheduling; True if any response expects Gemini to speak."""
        expects_reply = False
        for resp in event.function_responses or []:
            if resp.id and self.ledger.settled_or_cancelled(resp.id):
                continue  # will not be sent (connection.py): nothing to wait for
            policy = self._hooks.tool_policies.get(resp.name or "")
            sched = policy.scheduling if policy else None
            if sched and resp.scheduling is None and not self._opts.vertexai:
                resp.scheduling = _SCHEDULING[sched]
            if resp.scheduling != types.FunctionResponseScheduling.SILENT:
                expects_reply = True
        return expects_reply

    def _handle_tool_call_cancellation(
        self, tool_call_cancellation: types.LiveServerToolCallCancellation
    ) -> None:
        ids = list(tool_call_cancellation.ids or [])
        running = self.ledger.cancelled(ids)
        logger.info("Gemini cancelled tool calls %s; %d were still running", ids, len(running))
        if running and self._hooks.on_tools_cancelled is not None:
            self._hooks.on_tools_cancelled(running)

    def _handle_tool_calls(self, tool_call: types.LiveServerToolCall) -> None:
        gen = self._current_generation
        if gen is None or gen._done or not self._gen_had_audio:
            # nothing spoken in this turn: no trailing words to wait for
            super()._handle_tool_calls(tool_call)
            return
        # Hand the calls to the agent now, but keep the audio/text open for the words
        # Gemini may still stream after the call; close on generationComplete/turnComplete
        # or after a short grace.
        audio_ch, text_ch = gen.audio_ch, gen.text_ch
        gen.audio_ch, gen.text_ch = utils.aio.Chan[Any](), utils.aio.Chan[Any]()
        super()._handle_tool_calls(tool_call)  # marks done; closes only the stand-ins
        gen.audio_ch, gen.text_ch = audio_ch, text_ch
        self._trailing_gen = gen
        self._trailing_timer = asyncio.get_running_loop().call_later(
            self._kopts.trailing_audio_grace_s, self._close_trailing
        )

    def _close_trailing(self) -> None:
        gen = self._trailing_gen
        self._trailing_gen = None
        if self._trailing_timer is not None:
            self._trailing_timer.cancel()
            self._trailing_timer = None
        if gen is not None:
            self._close_output_streams(gen)

    def _handle_server_content(self, server_content: types.LiveServerContent) -> None:
        gen: Any = self._trailing_gen  # Any: the plugin's _ResponseGeneration
        if gen is not None and self._is_current(gen):
            # trailing words after a tool call: feed the still-open streams
            parts = server_content.model_turn.parts if server_content.model_turn else None
            for part in parts or []:
                if part.inline_data and part.inline_data.data and not gen.audio_ch.closed:
                    gen.audio_ch.send_nowait(_frame(part.inline_data.data))
            if server_content.output_transcription and server_content.output_transcription.text:
                if not gen.text_ch.closed:
                    gen.push_text(server_content.output_transcription.text)
            if server_content.generation_complete or server_content.turn_complete:
                self._close_trailing()
            if self._trailing_timer is not None:  # more audio: extend the grace
                self._trailing_timer.cancel()
                self._trailing_timer = asyncio.get_running_loop().call_later(
                    self._kopts.trailing_audio_grace_s, self._close_trailing
                )
            return
        if server_content.model_turn and any(
            p.inline_data for p in server_content.model_turn.parts or []
        ):
            self._gen_had_audio = True
        done: Any = self._current_generation
        late = (
            done is not None
            and done._done
            and server_content.input_transcription is not None
            and bool(server_content.input_transcription.text)
        )
        super()._handle_server_content(server_content)
        if late:
            # the finished turn's transcript grew: say it again as final, same item
            self.emit(
                "input_audio_transcription_completed",
                llm.InputTranscriptionCompleted(
                    item_id=done.input_id,
                    transcript=done.input_transcription,
                    is_final=True,
                ),
            )

    def _is_late_transcript(self, resp: types.LiveServerMessage) -> bool:
        """Only a piece of the caller's transcript, after their turn was answered.

        Real Gemini streams input transcription late and in pieces, often after
        turnComplete. The plugin would open a new generation for it, which interrupts the
        agent's playout and glues the words onto the next turn. kaiwa's gate tells a late
        tail (no new speech since the reply ended) from the start of a new turn.
        """
        sc = resp.server_content
        if resp.tool_call or sc is None or sc.interrupted or sc.model_turn:
            return False
        if not (sc.input_transcription and sc.input_transcription.text):
            return False
        if sc.output_transcription and sc.output_transcription.text:
            return False
        gen = self._current_generation
        if gen is None or not gen._done or self._reply_done_at is None:
            return False
        spoke_again = self._speech_started_at is not None and (
            self._speech_started_at > self._reply_done_at
        )
        return not spoke_again and time.monotonic() - self._reply_done_at < LATE_TRANSCRIPT_S

    def _is_new_generation(self, resp: types.LiveServerMessage) -> bool:
        if self._is_late_transcript(resp):
            return False  # the plugin appends it to the finished turn; we finalise it below
        gen = self._trailing_gen
        if gen is not None and self._is_current(gen) and not resp.tool_call:
            sc = resp.server_content
            # still the tool turn's trailing output, or no content at all (a resumption
            # update, usage metadata): the held streams stay open
            if sc is None or (not sc.input_transcription and not sc.interrupted):
                return False
        if gen is not None:
            self._close_trailing()
        return super()._is_new_generation(resp)

    def _is_current(self, gen: Any) -> bool:
        return gen is self._current_generation

    async def aclose(self) -> None:
        self._watchdog.cancel()
        if self._go_away_task is not None:
            self._go_away_task.cancel()
        self._close_trailing()
        await super().aclose()


def _frame(data: bytes) -> rtc.AudioFrame:
    return rtc.AudioFrame(
        data=data,
        sample_rate=realtime_api.OUTPUT_AUDIO_SAMPLE_RATE,
        num_channels=realtime_api.OUTPUT_AUDIO_CHANNELS,
        samples_per_channel=len(data) // 2,
    )


class KaiwaRealtimeModel(realtime_api.RealtimeModel):
    """`google.realtime.RealtimeModel` plus kaiwa's session subclass."""

    def __init__(
        self,
        *,
        input_chunk_ms: int = 50,
        resilience: ResilienceOptions | None = None,
        hooks: CallHooks | None = None,
        manual_activity: bool = False,  # push-to-talk: activity detection off in kwargs
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.manual_activity = manual_activity
        self.input_chunk_ms = input_chunk_ms
        self.resilience = resilience or ResilienceOptions()
        self.hooks = hooks or CallHooks()

    def session(self, *, turn_detection_disabled: bool = False) -> KaiwaRealtimeSession:
        sess = KaiwaRealtimeSession(self)
        self._sessions.add(sess)
        return sess

"""kaiwa's Gemini realtime model: the plugin's model with the gaps we close.

We keep the plugin's code path (`livekit.plugins.google.realtime.RealtimeSession`) and
override only the hooks where it stops short (DESIGN.md, "Where the framework stops"):

- input chunking: the plugin re-chunks input audio into fixed 50 ms messages; we use
  `input_chunk_ms` (default 20 ms) so speech waits less before it is sent;
- setup: `connect()` waits forever for `setupComplete`, and a failed setup on a
  *reconnect* is fatal at once. Our connect guard bounds the setup wait and retries a
  failed reconnect setup with jittered backoff;
- retry budget: the plugin resets its retry counter on any server message, so a server
  that accepts and then dies is reconnected forever. We cap connection attempts in a time
  window, then give up (a fatal error the worker turns into a message for the caller);
- stall watchdog: a live but silent socket is waited on forever mid-turn. While a reply
  is due and nothing arrives within `stall_timeout_s`, we force a reconnect with the
  resumption handle;
- GoAway: the plugin reconnects at once, cutting the agent mid-sentence. We wait for the
  current generation to finish, but never past `timeLeft` minus a margin;
- audio across restarts: an error restart replaces the send queue and drops audio that
  was queued but not sent; we carry queued audio and tool responses over, and keep a
  bounded buffer of audio pushed while no connection is up;
- tool calls: `toolCallCancellation` only logs in the plugin; we cancel the running
  tools. Per-tool blocking behaviour and response scheduling come from the tools'
  policies (agent/tools/runtime.py);
- trailing audio on tool turns: the plugin ends the audio stream as soon as a `toolCall`
  arrives, so words Gemini streams after it ("let me check that…") start a new
  generation, which interrupts the agent's own playout. We keep the generation's audio
  open until `generationComplete`/`turnComplete` (or a short grace) after the tool call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from google.genai import types
from google.genai.live import AsyncSession
from livekit.agents import utils
from livekit.plugins.google.realtime import realtime_api
from livekit.plugins.google.realtime.realtime_api import (
    INPUT_AUDIO_CHANNELS,
    INPUT_AUDIO_SAMPLE_RATE,
)

from .faults import record_recovery
from .resilience import close_code, describe_close
from .tools import runtime as tool_runtime

logger = logging.getLogger("kaiwa.realtime")

_BEHAVIOR = {"blocking": types.Behavior.BLOCKING, "non_blocking": types.Behavior.NON_BLOCKING}
_SCHEDULING = {
    "interrupt": types.FunctionResponseScheduling.INTERRUPT,
    "when_idle": types.FunctionResponseScheduling.WHEN_IDLE,
    "silent": types.FunctionResponseScheduling.SILENT,
}
# Close codes that no retry can fix on a first connection (bad key, unknown model).
_PERMANENT_ON_FIRST_CONNECT = {1007, 1008}


class ReconnectBudgetExhausted(RuntimeError):
    """Gemini kept dropping the connection; we stopped reconnecting."""


@dataclass(frozen=True)
class ResilienceOptions:
    setup_timeout_s: float = 10.0
    stall_timeout_s: float = 10.0
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


class KaiwaRealtimeSession(realtime_api.RealtimeSession):
    def __init__(self, realtime_model: KaiwaRealtimeModel) -> None:
        super().__init__(realtime_model)
        self._kopts = realtime_model.resilience
        self._on_handle = realtime_model.on_resumption_handle
        chunk = INPUT_AUDIO_SAMPLE_RATE * realtime_model.input_chunk_ms // 1000
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
        self._connect_attempts: deque[float] = deque()
        self._ever_connected = False
        self._down_since: float | None = None
        self._down_reason = ""
        self._last_server_msg_at = time.monotonic()
        self._reply_due_since: float | None = None
        self._audio_backlog: deque[types.LiveClientRealtimeInput] = deque(
            maxlen=max(1, int(self._kopts.audio_buffer_s * 1000 / realtime_model.input_chunk_ms))
        )
        self._go_away_task: asyncio.Task[None] | None = None
        self._trailing_timer: asyncio.TimerHandle | None = None
        self._trailing_gen: Any = None  # a tool turn's generation still taking audio
        self._gen_had_audio = False
        self._watchdog = asyncio.create_task(self._stall_watchdog(), name="kaiwa-stall-watchdog")

    # ------------------------------------------------------------------ connect guard

    @contextlib.asynccontextmanager
    async def _guarded_connect(
        self, *, model: str, config: types.LiveConnectConfig
    ) -> AsyncIterator[AsyncSession]:
        self._apply_tool_policies(config)
        async with contextlib.AsyncExitStack() as stack:
            session = await self._connect_with_retries(stack, model, config)
            self._stamp_receives(session)
            yield session

    async def _connect_with_retries(
        self, stack: contextlib.AsyncExitStack, model: str, config: types.LiveConnectConfig
    ) -> AsyncSession:
        while True:
            self._stop_if_closing()
            await self._pace_connect()
            try:
                async with asyncio.timeout(self._kopts.setup_timeout_s):
                    session: AsyncSession = await stack.enter_async_context(
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

    async def _pace_connect(self) -> None:
        """Backoff with jitter between attempts; give up past the window budget."""
        now = time.monotonic()
        window = self._kopts.connect_window_s
        while self._connect_attempts and now - self._connect_attempts[0] > window:
            self._connect_attempts.popleft()
        recent = len(self._connect_attempts)
        if recent >= self._kopts.max_connects:
            logger.error(
                "Gemini dropped the connection %d times in %.0fs; giving up on this call",
                recent,
                window,
            )
            record_recovery(
                "gemini_gave_up", now - (self._down_since or now), attempts=recent, ok=False
            )
            raise ReconnectBudgetExhausted(
                f"Gemini Live connection failed {recent} times within {window:.0f}s"
            )
        if self._ever_connected and recent > 0:
            delay = min(self._kopts.backoff_cap_s, self._kopts.backoff_base_s * 2 ** (recent - 1))
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
        self._connect_attempts.append(time.monotonic())

    def _note_down(self, reason: str) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            self._down_reason = reason

    def _on_connected(self) -> None:
        now = time.monotonic()
        self._last_server_msg_at = now
        if self._ever_connected:
            record_recovery(
                "gemini_reconnect",
                now - (self._down_since or now),
                cause=self._down_reason or "restart",
                resumed_with_handle=self._session_resumption_handle is not None,
                buffered_audio_chunks=len(self._audio_backlog),
            )
        self._ever_connected = True
        self._down_since = None
        self._down_reason = ""

    def _stamp_receives(self, session: AsyncSession) -> None:
        """Note the arrival time of every server message (for the stall watchdog)."""
        receive_one = session._receive

        async def stamped() -> Any:
            msg = await receive_one()
            self._last_server_msg_at = time.monotonic()
            update = getattr(msg, "session_resumption_update", None)
            if update is not None and update.resumable and update.new_handle:
                if self._on_handle is not None:
                    self._on_handle(update.new_handle)
            return msg

        session._receive = stamped  # type: ignore[method-assign]

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
        old = self._msg_ch
        carried: list[Any] = []
        # The plugin swaps in a fresh send queue; keep what must not be lost.
        while not old.empty():
            msg = old.recv_nowait()
            if isinstance(msg, types.LiveClientRealtimeInput) and msg.audio is not None:
                carried.append(msg)
            elif isinstance(msg, types.LiveClientToolResponse):
                carried.append(msg)
        super()._mark_restart_needed(on_error=on_error)
        for msg in carried[-(self._audio_backlog.maxlen or 1) :]:
            self._msg_ch.send_nowait(msg)

    def _send_client_event(self, event: Any) -> None:
        if isinstance(event, types.LiveClientRealtimeInput) and event.audio is not None:
            if self._active_session is None:
                # no connection: keep a bounded tail of the caller's speech for later
                self._audio_backlog.append(event)
                return
            while self._audio_backlog:
                super()._send_client_event(self._audio_backlog.popleft())
        elif isinstance(event, types.LiveClientToolResponse):
            self._close_trailing()  # Gemini's reply to the result is a new generation
            self._schedule_tool_responses(event)
            self._reply_due_since = time.monotonic()
        elif isinstance(event, types.LiveClientContent) and event.turn_complete:
            self._reply_due_since = time.monotonic()
        super()._send_client_event(event)

    # ------------------------------------------------------------------ stall watchdog

    def _reply_due(self) -> bool:
        gen = self._current_generation
        return (gen is not None and not gen._done) or self._reply_due_since is not None

    async def _stall_watchdog(self) -> None:
        period = min(1.0, self._kopts.stall_timeout_s / 4)
        while not self._msg_ch.closed:
            await asyncio.sleep(period)
            if self._active_session is None or self._session_should_close.is_set():
                continue
            if not self._reply_due():
                continue
            since = max(self._last_server_msg_at, self._reply_due_since or 0.0)
            silent_for = time.monotonic() - since
            if silent_for < self._kopts.stall_timeout_s:
                continue
            logger.warning(
                "Gemini went silent for %.1fs while a reply was due; reconnecting with the "
                "resumption handle",
                silent_for,
            )
            self._reply_due_since = None
            self._note_down("stall")
            self._session_error = TimeoutError(f"Gemini stalled for {silent_for:.1f}s")
            self._mark_restart_needed(on_error=True)

    def _start_new_generation(self) -> None:
        self._reply_due_since = None
        self._gen_had_audio = False
        super()._start_new_generation()

    # ------------------------------------------------------------------ GoAway

    def _handle_go_away(self, go_away: types.LiveServerGoAway) -> None:
        time_left = _seconds(go_away.time_left)
        budget = max(0.0, time_left - self._kopts.go_away_margin_s)
        logger.info("Gemini GoAway: %.1fs left; reconnecting at the end of this reply", time_left)
        if self._go_away_task is None or self._go_away_task.done():
            self._go_away_task = asyncio.create_task(self._reconnect_when_idle(budget))

    async def _reconnect_when_idle(self, budget_s: float) -> None:
        deadline = time.monotonic() + budget_s
        while time.monotonic() < deadline:
            gen = self._current_generation
            if gen is None or gen._done:
                break
            await asyncio.sleep(0.05)
        self._note_down("go_away")
        # like the plugin's own GoAway restart: close and resume, keeping the send queue
        self._session_should_close.set()

    # ------------------------------------------------------------------ tools

    def _apply_tool_policies(self, config: types.LiveConnectConfig) -> None:
        """Per-tool blocking behaviour on the declarations (the plugin sets one for all)."""
        for tool in config.tools or []:
            if not isinstance(tool, types.Tool):
                continue
            for decl in tool.function_declarations or []:
                policy = tool_runtime.POLICIES.get(decl.name or "")
                if policy is not None and policy.behavior is not None:
                    decl.behavior = _BEHAVIOR[policy.behavior]

    def _schedule_tool_responses(self, event: types.LiveClientToolResponse) -> None:
        """Per-tool response scheduling (Gemini reads it for NON_BLOCKING tools only)."""
        if self._opts.vertexai:
            return
        for resp in event.function_responses or []:
            policy = tool_runtime.POLICIES.get(resp.name or "")
            if policy is not None and policy.scheduling is not None and resp.scheduling is None:
                resp.scheduling = _SCHEDULING[policy.scheduling]

    def _handle_tool_call_cancellation(
        self, tool_call_cancellation: types.LiveServerToolCallCancellation
    ) -> None:
        ids = list(tool_call_cancellation.ids or [])
        n = tool_runtime.cancel_calls(ids)
        logger.info("Gemini cancelled tool calls %s; %d were still running", ids, n)

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
        held = _HeldStreams(audio_ch, text_ch)
        gen.audio_ch, gen.text_ch = held.audio, held.text
        super()._handle_tool_calls(tool_call)  # marks done; closes only the held stand-ins
        gen.audio_ch, gen.text_ch = audio_ch, text_ch
        self._trailing_gen = gen
        loop = asyncio.get_running_loop()
        self._trailing_timer = loop.call_later(
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
        gen: Any = self._trailing_gen
        if gen is not None and self._is_current(gen):
            # trailing words after a tool call: feed the still-open streams
            parts = server_content.model_turn.parts if server_content.model_turn else None
            for part in parts or []:
                if part.inline_data and part.inline_data.data and not gen.audio_ch.closed:
                    self._push_audio(gen, part.inline_data.data)
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
        super()._handle_server_content(server_content)

    def _is_new_generation(self, resp: types.LiveServerMessage) -> bool:
        gen = self._trailing_gen
        if gen is not None and gen is self._current_generation and not resp.tool_call:
            sc = resp.server_content
            if sc is not None and not sc.input_transcription and not sc.interrupted:
                return False  # still the tool turn's trailing output
        if gen is not None:
            self._close_trailing()
        return super()._is_new_generation(resp)

    def _is_current(self, gen: Any) -> bool:
        return gen is self._current_generation

    @staticmethod
    def _push_audio(gen: Any, data: bytes) -> None:
        from livekit import rtc

        gen.audio_ch.send_nowait(
            rtc.AudioFrame(
                data=data,
                sample_rate=realtime_api.OUTPUT_AUDIO_SAMPLE_RATE,
                num_channels=realtime_api.OUTPUT_AUDIO_CHANNELS,
                samples_per_channel=len(data) // 2,
            )
        )

    async def aclose(self) -> None:
        self._watchdog.cancel()
        if self._go_away_task is not None:
            self._go_away_task.cancel()
        self._close_trailing()
        await super().aclose()


def _seconds(value: Any) -> float:
    """A proto3 JSON duration ("10s", "1.500s") or timedelta, in seconds."""
    if value is None:
        return 0.0
    if hasattr(value, "total_seconds"):
        return float(value.total_seconds())
    try:
        return float(str(value).rstrip("s"))
    except ValueError:
        return 0.0


class _HeldStreams:
    """Stand-ins the plugin may close while the real streams stay open."""

    def __init__(self, audio: Any, text: Any) -> None:
        self.audio = utils.aio.Chan[Any]()
        self.text = utils.aio.Chan[Any]()


class KaiwaRealtimeModel(realtime_api.RealtimeModel):
    """`google.realtime.RealtimeModel` plus kaiwa's session subclass."""

    def __init__(
        self,
        *,
        input_chunk_ms: int = 50,
        resilience: ResilienceOptions | None = None,
        on_resumption_handle: Callable[[str], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.input_chunk_ms = input_chunk_ms
        self.resilience = resilience or ResilienceOptions()
        # told every new resumption handle (kept outside the process, agent/session_store.py)
        self.on_resumption_handle = on_resumption_handle

    def session(self, *, turn_detection_disabled: bool = False) -> KaiwaRealtimeSession:
        sess = KaiwaRealtimeSession(self)
        self._sessions.add(sess)
        return sess

"""One logical Gemini Live session (across reconnects) and its WebSocket connections."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
import secrets
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from .audio import (
    INPUT_RATE,
    OUTPUT_MIME,
    OUTPUT_RATE,
    TurnDetector,
    UserTurn,
    rate_from_mime,
    resample,
    rms,
    speech_like_pcm,
)
from .records import (
    ActivityRecord,
    AudioChunk,
    ClientContentRecord,
    HandleRecord,
    JsonDict,
    LostRecord,
    MessageRecord,
    ProtocolErrorKind,
    ProtocolErrorRecord,
    SetupInfo,
    SpeakResult,
    TextRecord,
    ToolCallRecord,
    ToolResponseRecord,
    VideoFrame,
    b64decode_any,
    b64encode,
    pick,
    proto_duration,
)

if TYPE_CHECKING:
    from .server import GeminiLiveFake

log = logging.getLogger("tests.fakes.gemini_live")

T = TypeVar("T")

# Reasons Google's frontend puts in close frames (seen in public bug reports)
REASON_INTERNAL = "Internal error encountered."
REASON_INVALID_ARGUMENT = "Request contains an invalid argument."
# the close after goAway's timeLeft ran out (public report: kizuna-ai-lab/sokuji#179)
REASON_DEADLINE = "Deadline expired before operation could complete."

# Gemini bills audio at 32 tokens per second; usageMetadata uses it for plausible numbers
_TOKENS_PER_AUDIO_SECOND = 32


class ConnectionGone(ConnectionError):
    """The connection a driving call was using closed under it."""


class ProtocolViolation(ValueError):
    """A client message the real service refuses; the read loop closes with 1007."""


class Signal:
    """A broadcast 'something changed' wake-up: waiters re-check their own predicate.

    Usable from sync code (notify) and async code (wait_for), unlike asyncio.Condition.
    """

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait_for(self, predicate: Callable[[], T | None], timeout: float, what: str) -> T:
        try:
            async with asyncio.timeout(timeout):
                while True:
                    event = self._event  # grab before checking, so no wake-up is lost
                    result = predicate()
                    if result is not None and result is not False:
                        return result
                    await event.wait()
        except TimeoutError:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}") from None


def _split_pieces(text: str, pieces: int) -> list[str]:
    """Split at word boundaries (leading spaces kept) into at most `pieces` pieces."""
    words = re.findall(r"\s*\S+", text) or [text]
    n = max(1, min(pieces, len(words)))
    bounds = [round(i * len(words) / n) for i in range(n + 1)]
    return ["".join(words[bounds[i] : bounds[i + 1]]) for i in range(n)]


def _elide(obj: Any) -> Any:
    """Copy of a frame for the message log, with bulky base64 payloads summarised."""
    if isinstance(obj, dict):
        return {
            k: (
                f"<{len(v)} b64 chars>"
                if k == "data" and isinstance(v, str) and len(v) > 120
                else _elide(v)
            )
            for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [_elide(v) for v in obj]
    return obj


class FakeConnection:
    """One WebSocket connection (one `setup`). Timestamps are time.monotonic()."""

    def __init__(self, fake: GeminiLiveFake, ws: ServerConnection, index: int) -> None:
        self.fake = fake
        self.ws = ws
        self.index = index  # fake-wide, in accept order
        req = ws.request
        self.path: str = req.path if req else ""
        self.headers: dict[str, str] = (
            {k.lower(): v for k, v in req.headers.raw_items()} if req else {}
        )
        self.api_version: str | None = None
        self.method: str | None = None
        self.api_key: str | None = None
        self.opened_at = time.monotonic()
        self.setup: JsonDict | None = None
        self.setup_at: float | None = None
        self.setup_complete_at: float | None = None
        self.resumed_handle: str | None = None  # handle presented in setup, if we knew it
        # True when resumed_handle was the conversation's newest handle at the time
        self.resumed_latest: bool | None = None
        self.pong_delay_s: float = fake.pong_delay_s  # delay before answering each ping
        self.pings_received = 0
        self.go_away_at: float | None = None
        self.go_away_deadline: float | None = None  # the fake closes 1011 then, if still open
        self.conversation: FakeConversation | None = None
        self.hung = False
        self.hung_at_setup = False
        self.closed_at: float | None = None
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.closed_by: Literal["server", "client", "abort"] | None = None
        self.frames_in = 0
        self.frames_out = 0
        self.unattached_messages: list[MessageRecord] = []  # only while no conversation

    def __repr__(self) -> str:
        return (
            f"FakeConnection(#{self.index}, version={self.api_version}, "
            f"live={self.is_live}, close={self.close_code}, by={self.closed_by})"
        )

    @property
    def is_open(self) -> bool:
        return self.closed_at is None

    @property
    def is_live(self) -> bool:
        """setupComplete went out and the socket is still open."""
        return self.is_open and self.setup_complete_at is not None

    def record(self, direction: Literal["in", "out"], data: Any, dropped: bool = False) -> None:
        rec = MessageRecord(time.monotonic(), direction, self.index, _elide(data), dropped)
        if self.conversation is not None:
            self.conversation.messages.append(rec)
        else:
            self.unattached_messages.append(rec)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("conn#%d %s %s", self.index, direction, json.dumps(rec.data)[:300])

    async def send(self, message: JsonDict) -> None:
        """Send one server message (binary frame by default, like Google's servers)."""
        if self.hung:
            self.record("out", message, dropped=True)
            return
        if not self.is_open:
            raise ConnectionGone(f"connection #{self.index} is closed")
        payload = json.dumps(message, separators=(",", ":"))
        self.record("out", message)
        try:
            await self.ws.send(payload.encode() if self.fake.binary_frames else payload)
        except ConnectionClosed as e:
            raise ConnectionGone(f"connection #{self.index} closed: {e}") from e
        self.frames_out += 1

    async def close(self, code: int, reason: str) -> None:
        # a close frame holds at most 123 bytes of reason; Google's long messages get cut too
        reason = reason.encode()[:123].decode(errors="ignore")
        if self.closed_by is None:
            self.closed_by = "server"
        log.info("conn#%d: server closes %d %r", self.index, code, reason)
        await self.ws.close(code, reason)

    def abort(self) -> None:
        if self.closed_by is None:
            self.closed_by = "abort"
        log.info("conn#%d: TCP abort", self.index)
        transport = self.ws.transport
        if transport is not None:
            transport.abort()

    async def wait_closed_and_mark(self) -> None:
        """Record the close once the handshake (or the TCP teardown) is over."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ws.wait_closed(), 15.0)
        self.mark_closed()

    def mark_closed(self) -> None:
        if self.closed_at is not None:
            return
        self.closed_at = time.monotonic()
        proto = self.ws.protocol
        if self.closed_by is None:
            self.closed_by = "client"
        # the initiator's code: what we sent, what the client sent, or 1006 for no close frame
        sent, rcvd = proto.close_sent, proto.close_rcvd
        if self.closed_by == "abort" or (self.closed_by == "client" and rcvd is None):
            self.close_code, self.close_reason = 1006, ""
        elif self.closed_by == "server" and sent is not None:
            self.close_code, self.close_reason = sent.code, sent.reason
        elif rcvd is not None:
            self.close_code, self.close_reason = rcvd.code, rcvd.reason
        log.info(
            "conn#%d closed: code=%s reason=%r by=%s",
            self.index,
            self.close_code,
            self.close_reason,
            self.closed_by,
        )

    async def wait_closed(self, timeout: float = 10.0) -> FakeConnection:
        """Wait until the fake has recorded this connection's close."""
        return await self.fake._changed.wait_for(
            lambda: self if self.closed_at is not None else None,
            timeout,
            f"conn#{self.index} to close",
        )


class _Speech:
    """State of the speak() in progress."""

    def __init__(self, result: SpeakResult, barge_in: bool) -> None:
        self.result = result
        self.barge_in = barge_in
        self.stop = asyncio.Event()
        self.done = asyncio.Event()
        self.voiced_during = 0.0  # seconds of voiced user audio since the first audio chunk

    def interrupt(self, by: Literal["barge_in", "explicit"], at: float) -> None:
        if not self.stop.is_set():
            self.result.interrupted_by = by
            self.result.interrupted_at = at
            self.stop.set()


class FakeConversation:
    """One logical Gemini session. Reconnects that present a handle we issued join it.

    All `wait_*` methods take a timeout (seconds) and raise TimeoutError when it expires.
    Methods that say "claims" return each matching item once per method.
    Driving methods act on the current live connection, waiting up to `timeout` for a
    reconnect if there is none.
    """

    def __init__(self, fake: GeminiLiveFake, index: int, auto: bool) -> None:
        self.fake = fake
        self.index = index
        self.id = f"conv-{index}"
        self.auto = auto
        self.created_at = time.monotonic()
        self.connections: list[FakeConnection] = []
        self.setups: list[JsonDict] = []
        self.messages: list[MessageRecord] = []
        self.audio: list[AudioChunk] = []
        self.video_frames: list[VideoFrame] = []
        self.texts: list[TextRecord] = []  # realtime_input.text
        self.user_texts: list[TextRecord] = []  # typed user text by any route
        self.client_contents: list[ClientContentRecord] = []
        self.tool_responses: list[ToolResponseRecord] = []
        self.tool_calls: dict[str, ToolCallRecord] = {}
        self.activity: list[ActivityRecord] = []
        self.context_updates: list[JsonDict] = []
        self.user_turns: list[UserTurn] = []  # energy VAD with fake.silence_ms
        self.speeches: list[SpeakResult] = []
        self.handles: list[str] = []  # resumption handles issued, in order
        self.first_voiced_at: float | None = None
        self._audio_seconds = 0.0
        self._voiced_seconds = 0.0
        self._vad = TurnDetector(silence_ms=fake.silence_ms, threshold=fake.voiced_threshold)
        self._speech: _Speech | None = None
        self._speak_lock = asyncio.Lock()
        self._auto_pending = 0  # auto replies spawned and not finished
        self._auto_speaking = False
        self._unanswered_texts: list[str] = []
        self._claims: dict[str, set[int]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tokens_in = 0
        self._tokens_out = 0
        self.protocol_errors: list[ProtocolErrorRecord] = []
        self.tool_response_counts: dict[str, int] = {}  # every id answered, unknown ones too
        self.handle_records: dict[str, HandleRecord] = {}
        self.lost_after_resume: list[LostRecord] = []
        self.ignored_user_turns: list[UserTurn] = []  # turns the fake stayed silent after
        self.next_user_transcript: str | None = None  # the auto script's next "heard" words
        self._ignore_turns = 0

    def __repr__(self) -> str:
        return f"FakeConversation({self.id}, connections={len(self.connections)})"

    # ----------------------------------------------------------------- setup accessors

    @property
    def setup(self) -> JsonDict:
        """The first setup dict as received (the one that created the conversation)."""
        return self.setups[0] if self.setups else {}

    @property
    def setup_info(self) -> SetupInfo:
        return SetupInfo(self.setup)

    @property
    def model(self) -> str | None:
        return self.setup_info.model

    @property
    def voice(self) -> str | None:
        return self.setup_info.voice

    @property
    def system_instruction(self) -> str | None:
        return self.setup_info.system_instruction

    @property
    def tool_names(self) -> list[str]:
        return self.setup_info.tool_names

    @property
    def language(self) -> str | None:
        return self.setup_info.language

    @property
    def manual_activity(self) -> bool:
        """Automatic activity detection disabled: the client sends activityStart/End."""
        return bool(pick(self.setup, "realtimeInputConfig.automaticActivityDetection.disabled"))

    @property
    def model_family(self) -> str:
        """ "2.5" or "3.8" (or "3.1"), from the model name in setup."""
        return self.setup_info.model_family

    @property
    def tool_behaviors(self) -> dict[str, str]:
        """{tool: "BLOCKING" | "NON_BLOCKING"} as the server applies them (latest setup)."""
        return SetupInfo(self.setups[-1] if self.setups else {}).tool_behaviors

    # ----------------------------------------------------------------- strictness

    @property
    def pending_tool_calls(self) -> list[str]:
        """Ids of calls issued and not yet answered, cancelled or forgotten by a resume."""
        return [i for i, c in self.tool_calls.items() if c.pending]

    def assert_no_protocol_errors(self, *, allow: Iterable[str] = ()) -> None:
        """Fail (AssertionError) if the client did anything the real service refuses."""
        allowed = set(allow)
        errors = [e for e in self.protocol_errors if e.kind not in allowed]
        if errors:
            lines = "\n".join(f"  conn#{e.connection} {e.kind}: {e.detail}" for e in errors)
            raise AssertionError(f"{self.id}: {len(errors)} protocol error(s):\n{lines}")

    def ignore_next_user_turns(self, n: int = 1) -> None:
        """Session hang: after each of the next n user turns send nothing at all (no
        transcription, no reply, no resumption update). The socket stays open, pings are
        answered, and test-driven calls (speak, send) still work."""
        self._ignore_turns += n

    # ----------------------------------------------------------------- state accessors

    @property
    def current_connection(self) -> FakeConnection | None:
        return self.connections[-1] if self.connections else None

    @property
    def live_connection(self) -> FakeConnection | None:
        conn = self.current_connection
        return conn if conn is not None and conn.is_live else None

    @property
    def audio_seconds(self) -> float:
        return self._audio_seconds

    @property
    def voiced_seconds(self) -> float:
        return self._voiced_seconds

    @property
    def audio_pcm(self) -> bytes:
        """All received audio, concatenated (16 kHz int16 mono)."""
        return b"".join(c.pcm for c in self.audio)

    @property
    def video_mime_types(self) -> list[str]:
        return sorted({f.mime_type for f in self.video_frames})

    @property
    def speaking(self) -> bool:
        return self._speak_lock.locked() or self._auto_pending > 0

    @property
    def last_handle(self) -> str | None:
        return self.handles[-1] if self.handles else None

    # ----------------------------------------------------------------- waiting

    async def _wait(self, predicate: Callable[[], T | None], timeout: float, what: str) -> T:
        return await self.fake._changed.wait_for(predicate, timeout, f"{self.id}: {what}")

    async def _next_claim(
        self,
        name: str,
        items: list[T],
        predicate: Callable[[T], bool] | None,
        timeout: float,
        what: str,
    ) -> T:
        claimed = self._claims.setdefault(name, set())

        def find() -> tuple[int, T] | None:
            for i, item in enumerate(items):
                if i not in claimed and (predicate is None or predicate(item)):
                    return i, item
            return None

        i, item = await self._wait(find, timeout, what)
        claimed.add(i)
        return item

    async def wait_for_connection(self, count: int = 1, timeout: float = 10.0) -> FakeConnection:
        """Wait until the conversation has had `count` connections and one is live."""

        def ready() -> FakeConnection | None:
            if len(self.connections) >= count:
                return self.live_connection
            return None

        return await self._wait(ready, timeout, f"live connection #{count}")

    async def wait_for_reconnect(self, timeout: float = 10.0) -> FakeConnection:
        """Wait for a live connection newer than the current one."""
        return await self.wait_for_connection(len(self.connections) + 1, timeout)

    async def wait_for_close(self, timeout: float = 10.0) -> FakeConnection:
        """Wait until the current connection is closed; returns it (close_code etc. set)."""
        conn = self.current_connection
        if conn is None:
            raise RuntimeError(f"{self.id} has no connection")
        return await self._wait(lambda: conn if not conn.is_open else None, timeout, "close")

    async def wait_for_audio(self, seconds: float = 1.0, timeout: float = 10.0) -> float:
        """At least `seconds` of user audio (voiced or not) received. Returns the total."""
        return await self._wait(
            lambda: self._audio_seconds if self._audio_seconds >= seconds - 1e-9 else None,
            timeout,
            f"{seconds}s of audio",
        )

    async def wait_for_voiced_audio(
        self, seconds: float = 1.0, timeout: float = 10.0, *, since: float | None = None
    ) -> float:
        """At least `seconds` of non-silent user audio received (after monotonic `since`)."""

        def voiced() -> float | None:
            if since is None:
                total = self._voiced_seconds
            else:
                total = sum(c.voiced_seconds for c in self.audio if c.at >= since)
            return total if total >= seconds - 1e-9 else None

        return await self._wait(voiced, timeout, f"{seconds}s of voiced audio")

    async def wait_for_user_turn_end(
        self, timeout: float = 10.0, *, silence_ms: float | None = None
    ) -> UserTurn:
        """Claims the next user turn: voiced audio then >= silence_ms of silent audio.

        With the default silence_ms (fake.silence_ms) this returns entries of `user_turns`;
        another value runs a private VAD over the audio after the last claimed turn.
        """
        if silence_ms is None or silence_ms == self._vad.silence_ms:
            return await self._next_claim("turn", self.user_turns, None, timeout, "user turn end")
        claim_key = "turn_pos"
        start = max(self._claims.get(claim_key, {0}))
        detector = TurnDetector(silence_ms=silence_ms, threshold=self.fake.voiced_threshold)
        pos = start

        def scan() -> UserTurn | None:
            nonlocal pos
            while pos < len(self.audio):
                c = self.audio[pos]
                turns = [detector.feed(pos, c.at, sec, lv) for sec, lv in c.frames]
                pos += 1
                if found := next((t for t in turns if t is not None), None):
                    return found
            return None

        turn = await self._wait(scan, timeout, f"user turn end ({silence_ms} ms)")
        self._claims[claim_key] = {turn.end_chunk_index + 1}
        return turn

    async def wait_for_client_content(
        self,
        predicate: Callable[[ClientContentRecord], bool] | None = None,
        timeout: float = 10.0,
    ) -> ClientContentRecord:
        """Claims the next client_content message (optionally matching `predicate`)."""
        return await self._next_claim(
            "cc", self.client_contents, predicate, timeout, "client_content"
        )

    async def wait_for_text(self, timeout: float = 10.0) -> TextRecord:
        """Claims the next realtime_input.text."""
        return await self._next_claim("text", self.texts, None, timeout, "realtime_input.text")

    async def wait_for_user_text(self, timeout: float = 10.0) -> str:
        """Claims the next typed user text, whichever way it came.

        The LiveKit plugin delivers lk.chat text (AgentSession.generate_reply(user_input=...))
        as client_content {"turns": [{"role": "user", "parts": [{"text": ...}]}],
        "turnComplete": false} followed by a reply request; realtime_input.text counts too.
        """
        rec = await self._next_claim("user_text", self.user_texts, None, timeout, "user text")
        return rec.text

    async def wait_for_greeting_request(self, timeout: float = 10.0) -> ClientContentRecord:
        """Claims the next generate_reply(instructions=...) request (turnComplete true)."""
        return await self._next_claim(
            "greeting",
            self.client_contents,
            lambda r: r.is_greeting_request,
            timeout,
            "greeting request",
        )

    async def wait_for_reply_request(self, timeout: float = 10.0) -> ClientContentRecord:
        """Claims the next client_content with turnComplete true (any generate_reply)."""
        return await self._next_claim(
            "reply", self.client_contents, lambda r: r.turn_complete, timeout, "reply request"
        )

    async def wait_for_activity(
        self, kind: Literal["activityStart", "activityEnd", "audioStreamEnd"], timeout: float = 10.0
    ) -> ActivityRecord:
        return await self._next_claim(
            f"activity:{kind}", self.activity, lambda a: a.kind == kind, timeout, kind
        )

    async def wait_for_video_frames(self, count: int = 1, timeout: float = 10.0) -> int:
        return await self._wait(
            lambda: len(self.video_frames) if len(self.video_frames) >= count else None,
            timeout,
            f"{count} video frames",
        )

    async def wait_for_tool_response(self, call_id: str, timeout: float = 10.0) -> JsonDict:
        """The `response` dict ({"output": ...} or {"error": ...}) for a call we sent."""

        def found() -> JsonDict | None:
            for r in self.tool_responses:
                if r.id == call_id:
                    return r.response
            return None

        return await self._wait(found, timeout, f"tool response {call_id}")

    async def _live(self, timeout: float) -> FakeConnection:
        return await self._wait(lambda: self.live_connection, timeout, "a live connection")

    # ----------------------------------------------------------------- driving: speech

    async def send(self, message: JsonDict, timeout: float = 10.0) -> None:
        """Send any raw server message on the live connection (escape hatch)."""
        conn = await self._live(timeout)
        await conn.send(message)

    async def send_input_transcription(self, text: str, timeout: float = 10.0) -> None:
        await self.send({"serverContent": {"inputTranscription": {"text": text}}}, timeout)

    async def speak(
        self,
        text: str = "Hello from the fake.",
        *,
        seconds: float | None = None,
        pcm: bytes | None = None,
        chunk_ms: int = 40,
        realtime: bool = True,
        barge_in: bool = True,
        input_transcript: str | None = None,
        transcript_timing: Literal["before", "late"] = "before",
        transcript_pieces: int = 3,
        timeout: float = 10.0,
    ) -> SpeakResult:
        """Play one model turn: [inputTranscription], audio + outputTranscription pieces,
        generationComplete, turnComplete (+ usageMetadata, + resumption update).

        `input_transcript` goes out before the audio ("before"), or ("late", like the real
        service) split at word boundaries into up to `transcript_pieces` pieces: all but the
        last spread over the audio starting after the first chunk, the last one
        `fake.late_transcript_delay_s` after turnComplete.

        Audio is `pcm` (24 kHz s16le mono) or a speech-like signal of `seconds` (default
        ~70 ms per character of `text`, min 1 s), sent in `chunk_ms` pieces paced on the
        monotonic clock when `realtime`. With `barge_in`, voiced user audio (fake.barge_in_ms
        of it) arriving after the first chunk stops the turn: interrupted, then turnComplete.
        One speak runs at a time per conversation; a second call waits for the first.
        """
        async with self._speak_lock:
            conn = await self._live(timeout)
            return await self._speak_on(
                conn,
                text,
                seconds=seconds,
                pcm=pcm,
                chunk_ms=chunk_ms,
                realtime=realtime,
                barge_in=barge_in,
                input_transcript=input_transcript,
                transcript_timing=transcript_timing,
                transcript_pieces=transcript_pieces,
            )

    async def _speak_on(
        self,
        conn: FakeConnection,
        text: str,
        *,
        seconds: float | None,
        pcm: bytes | None,
        chunk_ms: int,
        realtime: bool,
        barge_in: bool,
        input_transcript: str | None,
        transcript_timing: Literal["before", "late"] = "before",
        transcript_pieces: int = 3,
    ) -> SpeakResult:
        late: list[str] = []
        if input_transcript and transcript_timing == "late":
            late = _split_pieces(input_transcript, transcript_pieces)
            input_transcript = None
        if pcm is None:
            dur = seconds if seconds is not None else max(1.0, 0.07 * len(text))
            pcm = speech_like_pcm(dur, OUTPUT_RATE, f0=210.0)
        chunk_bytes = max(2, round(OUTPUT_RATE * chunk_ms / 1000) * 2)
        chunks = [pcm[i : i + chunk_bytes] for i in range(0, len(pcm), chunk_bytes)]
        pieces = re.findall(r"\s*\S+", text)
        # transcript piece j goes out right after audio chunk at_chunk[j], spread evenly
        at_chunk = [j * len(chunks) // len(pieces) for j in range(len(pieces))] if chunks else []
        chunk_s = chunk_ms / 1000
        result = SpeakResult(
            text=text,
            connection=conn.index,
            started_at=time.monotonic(),
            audio_seconds=len(pcm) / 2 / OUTPUT_RATE,
            chunks_planned=len(chunks),
        )
        self.speeches.append(result)
        speech = _Speech(result, barge_in)
        self._speech = speech
        log.info("%s: speak %.2fs %r", self.id, result.audio_seconds, text[:60])

        async def pause_until(deadline: float) -> bool:
            """Wait until `deadline` unless stopped; True if stopped."""
            delay = deadline - time.monotonic()
            if speech.stop.is_set():
                return True
            if not realtime or delay <= 0:
                return False
            try:
                await asyncio.wait_for(speech.stop.wait(), delay)
            except TimeoutError:
                return False
            return True

        # late pieces: all but the last after chunks 0, n/k, ...; the last after turnComplete
        late_at = [j * len(chunks) // max(1, len(late) - 1) for j in range(len(late) - 1)]
        late_next = 0

        async def send_in(text: str) -> None:
            await conn.send({"serverContent": {"inputTranscription": {"text": text}}})
            result.input_transcript_sent.append((time.monotonic(), text))

        try:
            if input_transcript:
                await send_in(input_transcript)
            t0 = time.monotonic()
            piece = 0
            for k, chunk in enumerate(chunks):
                if await pause_until(t0 + k * chunk_s):
                    break
                part = {"inlineData": {"mimeType": OUTPUT_MIME, "data": b64encode(chunk)}}
                await conn.send({"serverContent": {"modelTurn": {"parts": [part]}}})
                now = time.monotonic()
                if result.first_audio_sent_at is None:
                    result.first_audio_sent_at = now
                result.last_audio_sent_at = now
                result.chunks_sent += 1
                while late_next < len(late_at) and late_at[late_next] <= k:
                    await send_in(late[late_next])
                    late_next += 1
                while piece < len(pieces) and at_chunk[piece] <= k:
                    await conn.send(
                        {"serverContent": {"outputTranscription": {"text": pieces[piece]}}}
                    )
                    result.transcript_sent += pieces[piece]
                    piece += 1
            if not speech.stop.is_set():
                while piece < len(pieces):  # text with no audio at all
                    await conn.send(
                        {"serverContent": {"outputTranscription": {"text": pieces[piece]}}}
                    )
                    result.transcript_sent += pieces[piece]
                    piece += 1
                await conn.send({"serverContent": {"generationComplete": True}})
                # Gemini sends turnComplete once it thinks playback ended; barge-in still counts
                await pause_until(t0 + len(chunks) * chunk_s)
            self._tokens_out += round(result.audio_seconds_sent * _TOKENS_PER_AUDIO_SECOND)
            if speech.stop.is_set():
                result.interrupted = True
                log.info("%s: speech interrupted (%s)", self.id, result.interrupted_by)
                # interrupted alone leaves the plugin's generation open (protocol doc §4)
                await conn.send({"serverContent": {"interrupted": True}})
            else:
                result.completed = True
            await conn.send(
                {"serverContent": {"turnComplete": True}, "usageMetadata": self._usage()}
            )
            result.turn_complete_at = time.monotonic()
            await self._after_turn_complete(conn)
            if late_next < len(late):
                # the rest of what the user said arrives after the turn is over
                await asyncio.sleep(self.fake.late_transcript_delay_s)
                for text in late[late_next:]:
                    await send_in(text)
        except ConnectionGone:
            result.disconnected = True
            log.info("%s: speech cut by disconnect", self.id)
        finally:
            result.ended_at = time.monotonic()
            self._speech = None
            speech.done.set()
            self.fake._changed.notify()
        return result

    def _usage(self) -> JsonDict:
        prompt = self._tokens_in + round(self._audio_seconds * _TOKENS_PER_AUDIO_SECOND)
        out = self._tokens_out
        return {
            "promptTokenCount": prompt,
            "responseTokenCount": out,
            "totalTokenCount": prompt + out,
            "promptTokensDetails": [{"modality": "AUDIO", "tokenCount": prompt}],
            "responseTokensDetails": [{"modality": "AUDIO", "tokenCount": out}],
        }

    async def _after_turn_complete(self, conn: FakeConnection) -> None:
        if conn.setup is not None and SetupInfo(conn.setup).wants_resumption:
            await self.issue_handle(conn)

    async def issue_handle(self, conn: FakeConnection | None = None) -> str | None:
        """Send a sessionResumptionUpdate (done automatically after setupComplete, each
        turnComplete, a toolCall, and the tool response or cancellation that leaves no call
        pending, when setup asked for resumption).

        While any function call is pending the update is not resumable
        (`fake.not_resumable_update`, no newHandle) and None is returned; otherwise a fresh
        handle is issued, remembered with the state it stands for, and returned.
        """
        conn = conn or await self._live(10.0)
        if self.pending_tool_calls:
            await conn.send({"sessionResumptionUpdate": dict(self.fake.not_resumable_update)})
            return None
        handle = f"fake-handle-{self.index}-{len(self.handles)}-{secrets.token_hex(4)}"
        self.handles.append(handle)
        self.handle_records[handle] = HandleRecord(
            handle=handle,
            issued_at=time.monotonic(),
            connection=conn.index,
            audio_count=len(self.audio),
            user_turn_count=len(self.user_turns),
            text_count=len(self.texts),
            user_text_count=len(self.user_texts),
            client_content_count=len(self.client_contents),
            tool_call_ids=frozenset(self.tool_calls),
            unanswered_texts=tuple(self._unanswered_texts),
        )
        self.fake._handles[handle] = self
        await conn.send({"sessionResumptionUpdate": {"newHandle": handle, "resumable": True}})
        return handle

    def _spawn_handle_update(self, conn: FakeConnection) -> None:
        if conn.setup is not None and SetupInfo(conn.setup).wants_resumption and conn.is_live:

            async def run() -> None:
                with contextlib.suppress(ConnectionGone):
                    await self.issue_handle(conn)

            self.spawn(run())

    async def send_interrupted(self, timeout: float = 10.0) -> None:
        """Stop a running speak (it sends interrupted + turnComplete), or send both now."""
        speech = self._speech
        if speech is not None:
            speech.interrupt("explicit", time.monotonic())
            async with asyncio.timeout(timeout):
                await speech.done.wait()
            return
        conn = await self._live(timeout)
        await conn.send({"serverContent": {"interrupted": True}})
        await conn.send({"serverContent": {"turnComplete": True}})
        await self._after_turn_complete(conn)

    # ----------------------------------------------------------------- driving: tools

    async def send_tool_calls(
        self,
        calls: Iterable[tuple[str, JsonDict | None]],
        timeout: float = 10.0,
        *,
        reuse_ids: list[str] | None = None,
    ) -> list[str]:
        """Send one toolCall with several functionCalls (parallel calls); returns the ids.

        `reuse_ids` issues the calls under ids already used (a server asking again): each
        then expects one more answer (its record is replaced)."""
        conn = await self._live(timeout)
        now = time.monotonic()
        fcs: list[JsonDict] = []
        reuse = list(reuse_ids or [])
        for name, args in calls:
            call_id = reuse.pop(0) if reuse else f"function-call-{random.randrange(10**18, 10**19)}"
            self.tool_calls[call_id] = ToolCallRecord(
                call_id, name, dict(args or {}), now, conn.index
            )
            fcs.append({"id": call_id, "name": name, "args": dict(args or {})})
        log.info("%s: toolCall %s", self.id, [(f["name"], f["id"]) for f in fcs])
        await conn.send({"toolCall": {"functionCalls": fcs}})
        # the session is not resumable while the calls run (Google's SessionResumptionUpdate
        # docs); the fake says so at once (inferred: when Google sends it is not documented)
        await self._after_turn_complete(conn)
        return [f["id"] for f in fcs]

    async def send_tool_call(
        self, name: str, args: JsonDict | None = None, timeout: float = 10.0
    ) -> str:
        """Send a toolCall without waiting for the answer; returns the call id."""
        (call_id,) = await self.send_tool_calls([(name, args)], timeout)
        return call_id

    async def call_tool(
        self, name: str, args: JsonDict | None = None, timeout: float = 10.0
    ) -> JsonDict:
        """toolCall round trip: returns the client's response dict ({"output"|"error": ...})."""
        call_id = await self.send_tool_call(name, args, timeout)
        return await self.wait_for_tool_response(call_id, timeout)

    async def cancel_tool_calls(self, ids: list[str], timeout: float = 10.0) -> None:
        conn = await self._live(timeout)
        now = time.monotonic()
        had_pending = bool(self.pending_tool_calls)
        for call_id in ids:
            if (rec := self.tool_calls.get(call_id)) and rec.cancelled_at is None:
                rec.cancelled_at = now
        await conn.send({"toolCallCancellation": {"ids": list(ids)}})
        if had_pending and not self.pending_tool_calls:
            await self._after_turn_complete(conn)

    # ----------------------------------------------------------------- driving: faults

    async def close(
        self, code: int = 1011, reason: str = REASON_INTERNAL, timeout: float = 10.0
    ) -> None:
        """Close the current connection with a close frame (1011 like Google's crashes)."""
        conn = await self._live(timeout)
        await conn.close(code, reason)

    async def abort(self, timeout: float = 10.0) -> None:
        """Drop the TCP connection without a close frame (the client sees 1006)."""
        conn = await self._live(timeout)
        conn.abort()

    def hang(self) -> FakeConnection:
        """Stop sending anything on the current connection; keep reading and the socket open.

        websockets keeps answering pings, so the client only notices if it has its own
        timeout. Outgoing frames are logged with dropped=True.
        """
        conn = self.current_connection
        if conn is None:
            raise RuntimeError(f"{self.id} has no connection to hang")
        log.info("%s: hanging conn#%d", self.id, conn.index)
        conn.hung = True
        return conn

    async def go_away(
        self, time_left_s: float = 10.0, timeout: float = 10.0, *, close_when_due: bool = True
    ) -> FakeConnection:
        """Send goAway; when `time_left_s` runs out and the client has not closed the socket
        itself, close it with 1011 "Deadline expired before operation could complete."
        (unless close_when_due=False). Returns the connection it was sent on."""
        conn = await self._live(timeout)
        now = time.monotonic()
        conn.go_away_at, conn.go_away_deadline = now, now + time_left_s
        await conn.send({"goAway": {"timeLeft": proto_duration(time_left_s)}})
        if close_when_due:

            async def close_later() -> None:
                await asyncio.sleep(time_left_s)
                if conn.is_open and conn.closed_by is None:
                    log.info("%s: goAway deadline over, closing conn#%d", self.id, conn.index)
                    with contextlib.suppress(ConnectionClosed):
                        await conn.close(1011, REASON_DEADLINE)

            self.spawn(close_later())
        return conn

    async def send_malformed(
        self,
        kind: Literal["json", "unknown_type", "bad_base64"] = "json",
        timeout: float = 10.0,
    ) -> None:
        """A frame the SDK cannot parse: invalid JSON (ValueError in receive()), an unknown
        top-level key (TypeError), or undecodable audio (pydantic ValidationError)."""
        conn = await self._live(timeout)
        payloads: dict[str, str] = {
            "json": '{"serverContent": {"modelTurn": ',
            "unknown_type": '{"error": {"code": 500, "message": "fake failure"}}',
            "bad_base64": json.dumps(
                {
                    "serverContent": {
                        "modelTurn": {
                            "parts": [{"inlineData": {"mimeType": OUTPUT_MIME, "data": "@@@"}}]
                        }
                    }
                }
            ),
        }
        payload = payloads[kind]
        conn.record("out", payload)
        try:
            await conn.ws.send(payload.encode() if self.fake.binary_frames else payload)
        except ConnectionClosed as e:
            raise ConnectionGone(str(e)) from e

    # ----------------------------------------------------------------- inbound

    def attach(self, conn: FakeConnection) -> None:
        conn.conversation = self
        self.connections.append(conn)
        if conn.setup is not None:
            self.setups.append(conn.setup)
        for rec in conn.unattached_messages:
            self.messages.append(rec)
        conn.unattached_messages.clear()
        self.fake._changed.notify()

    def resume_from(self, conn: FakeConnection, handle: str) -> LostRecord:
        """`conn` presented `handle`: go back to the state it stands for.

        Everything received after the handle on older connections is marked lost (audio,
        user turns, typed text, client_content), calls issued after it are forgotten (an
        answer to one is an unknown id), typed text waiting for a reply goes back to what
        it was, and the energy VAD starts afresh.
        """
        now = time.monotonic()
        rec = self.handle_records[handle]
        conn.resumed_handle = handle
        conn.resumed_latest = bool(self.handles) and handle == self.handles[-1]
        if not conn.resumed_latest:
            log.warning("%s: conn#%d resumes with a stale handle", self.id, conn.index)
        old = conn.index

        def lose(items: list[Any], start: int) -> list[Any]:
            out = []
            for item in items[start:]:
                if item.connection != old and not item.lost:
                    item.lost = True
                    out.append(item)
            return out

        audio = lose(self.audio, rec.audio_count)
        lost_texts = lose(self.user_texts, rec.user_text_count)
        lose(self.texts, rec.text_count)
        contents = lose(self.client_contents, rec.client_content_count)
        turns = [t for t in self.user_turns[rec.user_turn_count :] if not t.lost]
        for t in turns:
            t.lost = True
        forgotten = []
        for call_id, call in self.tool_calls.items():
            if call_id not in rec.tool_call_ids and call.forgotten_at is None:
                call.forgotten_at = now
                forgotten.append(call_id)
        self._unanswered_texts = list(rec.unanswered_texts)
        self._vad = TurnDetector(
            silence_ms=self.fake.silence_ms, threshold=self.fake.voiced_threshold
        )
        lost = LostRecord(
            at=now,
            handle=handle,
            resumed_on=conn.index,
            audio_chunks=len(audio),
            audio_seconds=sum(c.seconds for c in audio),
            voiced_seconds=sum(c.voiced_seconds for c in audio),
            user_turns=len(turns),
            texts=[t.text for t in lost_texts],
            client_contents=len(contents),
            tool_call_ids=forgotten,
        )
        self.lost_after_resume.append(lost)
        log.info(
            "%s: conn#%d resumed (latest=%s); lost %.2fs audio, %d turns, %d calls",
            self.id,
            conn.index,
            conn.resumed_latest,
            lost.audio_seconds,
            lost.user_turns,
            len(forgotten),
        )
        return lost

    def on_message(self, conn: FakeConnection, msg: JsonDict) -> None:
        """Record one client frame (after setup) and feed the auto script."""
        for key, value in msg.items():
            k = key.lower().replace("_", "")
            if not isinstance(value, dict):
                continue
            if k == "realtimeinput":
                self._on_realtime_input(conn, value)
            elif k == "clientcontent":
                self._on_client_content(conn, value)
            elif k == "toolresponse":
                self._on_tool_response(conn, value)
            elif k == "contextupdate":
                self.context_updates.append(value)
            else:
                log.warning("%s: unexpected client message key %r", self.id, key)
        self.fake._changed.notify()

    def _on_realtime_input(self, conn: FakeConnection, ri: JsonDict) -> None:
        now = time.monotonic()
        if (blob := pick(ri, "audio")) is not None:
            self._on_audio(conn, blob)
        if (blob := pick(ri, "video")) is not None:
            self._on_video(conn, blob)
        for blob in pick(ri, "mediaChunks") or []:  # deprecated session.send() form
            mime = str(pick(blob, "mimeType") or "")
            if mime.startswith("audio/"):
                self._on_audio(conn, blob)
            else:
                self._on_video(conn, blob)
        if isinstance(text := pick(ri, "text"), str):
            rec = TextRecord(now, text, "realtime_input", conn.index)
            self.texts.append(rec)
            self.user_texts.append(rec)
            log.info("%s: realtime text %r", self.id, text)
            self.fake.script.on_realtime_text(self, text)
        kinds: tuple[Literal["activityStart", "activityEnd", "audioStreamEnd"], ...] = (
            "activityStart",
            "activityEnd",
            "audioStreamEnd",
        )
        for kind in kinds:
            if pick(ri, kind) is not None:
                self.activity.append(ActivityRecord(now, kind, conn.index))
                self._on_activity(kind)

    def _on_activity(self, kind: str) -> None:
        if kind == "activityStart" and self._speech and self._speech.barge_in:
            self._speech.interrupt("barge_in", time.monotonic())
        if kind == "activityEnd" and self.manual_activity:
            now = time.monotonic()
            # a stand-in turn (not in user_turns) so lost/ignored work with manual activity
            turn = UserTurn(now, now, now, 0.0, len(self.audio) - 1)
            self._user_turn_ended(turn)

    def _on_audio(self, conn: FakeConnection, blob: JsonDict) -> None:
        mime = str(pick(blob, "mimeType") or "audio/pcm")
        raw = b64decode_any(str(pick(blob, "data") or ""))
        rate = rate_from_mime(mime)
        pcm = resample(raw, rate, INPUT_RATE) if rate != INPUT_RATE else raw
        chunk = AudioChunk(
            time.monotonic(), pcm, rms(pcm), mime, conn.index, self.fake.voiced_threshold
        )
        index = len(self.audio)
        self.audio.append(chunk)
        self._audio_seconds += chunk.seconds
        if chunk.voiced:
            self._voiced_seconds += chunk.voiced_seconds
            if self.first_voiced_at is None:
                self.first_voiced_at = chunk.at
                log.info("%s: first voiced audio", self.id)
            speech = self._speech
            if speech and speech.barge_in and speech.result.first_audio_sent_at is not None:
                speech.voiced_during += chunk.voiced_seconds
                if speech.voiced_during * 1000 >= self.fake.barge_in_ms:
                    speech.interrupt("barge_in", chunk.at)
        for sec, level in chunk.frames:
            self._on_vad_frame(index, chunk.at, sec, level)

    def _on_vad_frame(self, index: int, at: float, seconds: float, level: float) -> None:
        turn = self._vad.feed(index, at, seconds, level)
        if turn is not None:
            self.user_turns.append(turn)
            log.info("%s: user turn end (%.2fs voiced)", self.id, turn.voiced_seconds)
            if not self.manual_activity:
                self._user_turn_ended(turn)

    def _user_turn_ended(self, turn: UserTurn) -> None:
        if self._ignore_turns > 0 or self.fake._silent_turns > 0:
            if self._ignore_turns > 0:
                self._ignore_turns -= 1
            else:
                self.fake._silent_turns -= 1
            turn.ignored = True
            self.ignored_user_turns.append(turn)
            log.info("%s: staying silent after this user turn (session hang)", self.id)
            return
        self.fake.script.on_user_turn(self, turn)

    def _on_video(self, conn: FakeConnection, blob: JsonDict) -> None:
        data = b64decode_any(str(pick(blob, "data") or ""))
        mime = str(pick(blob, "mimeType") or "")
        self.video_frames.append(VideoFrame(time.monotonic(), mime, len(data), conn.index))

    def _on_client_content(self, conn: FakeConnection, cc: JsonDict) -> None:
        turns = [t for t in pick(cc, "turns") or [] if isinstance(t, dict)]
        rec = ClientContentRecord(
            time.monotonic(), turns, bool(pick(cc, "turnComplete")), cc, conn.index
        )
        self.client_contents.append(rec)
        for text in rec.user_texts:
            self.user_texts.append(TextRecord(rec.at, text, "client_content", conn.index))
            log.info("%s: user text %r", self.id, text)
        self._tokens_in += sum(len(t) for _, t in rec.parts) // 4
        if not rec.turn_complete:
            self._unanswered_texts.extend(rec.user_texts)
            return
        texts, self._unanswered_texts = self._unanswered_texts + rec.user_texts, []
        if (instructions := rec.instructions) is not None:
            log.info("%s: greeting/instructions request %r", self.id, instructions[:80])
            self.fake.script.on_instructions(self, instructions)
        else:
            log.info("%s: reply request (pending texts %r)", self.id, texts)
            self.fake.script.on_reply_request(self, texts[-1] if texts else None)

    def _on_tool_response(self, conn: FakeConnection, tr: JsonDict) -> None:
        """Record the answers; refuse unknown, forgotten and repeated ids like the service."""
        now = time.monotonic()
        had_pending = bool(self.pending_tool_calls)
        accepted = 0
        fatal: list[str] = []
        for fr in pick(tr, "functionResponses") or []:
            if not isinstance(fr, dict):
                continue
            call_id = fr.get("id")
            raw_response = fr.get("response")
            response: JsonDict = raw_response if isinstance(raw_response, dict) else {}
            rec = ToolResponseRecord(
                now, call_id, fr.get("name"), response, fr.get("scheduling"), fr, conn.index
            )
            self.tool_responses.append(rec)
            log.info("%s: tool response %s %s", self.id, call_id, json.dumps(response)[:120])
            if call_id:
                self.tool_response_counts[call_id] = self.tool_response_counts.get(call_id, 0) + 1
            call = self.tool_calls.get(call_id) if call_id else None
            if call is not None:
                call.response_count += 1
            kind: ProtocolErrorKind | None = None
            if not call_id:
                kind, detail = "tool_response_without_id", f"functionResponse {fr.get('name')!r}"
            elif call is None:
                kind, detail = "unknown_tool_call_id", f"{call_id} was never issued"
            elif call.forgotten_at is not None:
                kind = "unknown_tool_call_id"
                detail = f"{call_id} ({call.name}) was issued after the handle the resume used"
            elif call.response_at is not None:
                kind = "duplicate_tool_response"
                detail = f"{call_id} ({call.name}) answered {call.response_count} times"
            elif call.cancelled_at is not None:
                kind = "cancelled_tool_call_answered"
                detail = f"{call_id} ({call.name}) was cancelled"
            if kind is None:
                assert call is not None
                call.response, call.response_at = response, now
                accepted += 1
                continue
            rec.rejected = kind
            close = kind != "cancelled_tool_call_answered" and self.fake.strict_tool_ids
            self.fake.record_protocol_error(kind, detail, conn, close)
            if close:
                fatal.append(f"{kind}: {detail}")
        if fatal:
            raise ProtocolViolation("; ".join(fatal))
        if accepted and had_pending and not self.pending_tool_calls:
            self._spawn_handle_update(conn)

    # ----------------------------------------------------------------- auto script plumbing

    def spawn_auto(self, factory: Callable[[], Coroutine[Any, Any, Any]]) -> bool:
        """Run an auto-script action, unless auto is off or a test's speak() is running.

        Auto replies queue behind each other (one speak at a time), never behind or over a
        test-driven speak: that one wins and the auto reply is dropped.
        """
        if not self.auto or self.live_connection is None:
            return False
        if self._speak_lock.locked() and not self._auto_speaking:
            log.info("%s: auto reply skipped, a test is speaking", self.id)
            return False
        self._auto_pending += 1

        async def run() -> None:
            try:
                await factory()
            except (ConnectionGone, TimeoutError) as e:
                log.info("%s: auto action aborted: %s", self.id, e)
            finally:
                self._auto_pending -= 1
                self.fake._changed.notify()

        self.spawn(run())
        return True

    async def auto_speak(
        self,
        text: str,
        seconds: float,
        input_transcript: str | None = None,
        *,
        turn: UserTurn | None = None,
        transcript_timing: Literal["before", "late"] = "before",
        transcript_pieces: int = 3,
    ) -> None:
        async with self._speak_lock:
            conn = self.live_connection
            if not self.auto or conn is None:  # turned off (or disconnected) while queued
                return
            if turn is not None and turn.lost:  # a resume went back to before this turn
                log.info("%s: not answering a user turn the resume lost", self.id)
                return
            self._auto_speaking = True
            try:
                await self._speak_on(
                    conn,
                    text,
                    seconds=seconds,
                    pcm=None,
                    chunk_ms=40,
                    realtime=True,
                    barge_in=True,
                    input_transcript=input_transcript,
                    transcript_timing=transcript_timing,
                    transcript_pieces=transcript_pieces,
                )
            finally:
                self._auto_speaking = False

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def cancel_tasks(self) -> None:
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

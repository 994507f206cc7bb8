"""A real WebRTC participant for tests and benchmarks (livekit.rtc, not a mock).

It gets its token over HTTP from the token server like any client, publishes a
"microphone" that streams speech when told to and silence otherwise (as a browser does),
and records what a user would observe: the agent's audio (per-frame RMS with arrival
times), transcriptions on `lk.transcription`, and the agent's attributes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from livekit import rtc

SAMPLE_RATE = 48000
FRAME_MS = 10
SAMPLES_PER_FRAME = SAMPLE_RATE * FRAME_MS // 1000
VOICED_RMS = 300.0  # int16 RMS above which a frame counts as sound, not silence


def load_wav(path: Path, rate: int = SAMPLE_RATE) -> np.ndarray:
    """A mono int16 WAV resampled (linear) to `rate`."""
    with wave.open(str(path), "rb") as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1, "mono 16-bit WAV expected"
        src_rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    if src_rate == rate:
        return pcm
    n = round(len(pcm) * rate / src_rate)
    x = np.linspace(0, len(pcm) - 1, n)
    return np.interp(x, np.arange(len(pcm)), pcm.astype(np.float32)).astype(np.int16)


@dataclass
class ReceivedFrame:
    at: float  # time.monotonic() on arrival
    rms: float
    samples: int


@dataclass
class TranscriptSegment:
    identity: str
    segment_id: str
    text: str = ""
    final: bool = False


@dataclass
class Caller:
    token_url: str
    bearer: str | None = None  # a bearer key (KAIWA_TOKEN_AUTH=bearer), e.g. a staff key
    audio_frames: list[ReceivedFrame] = field(default_factory=list)
    segments: dict[str, TranscriptSegment] = field(default_factory=dict)
    room: rtc.Room = field(default_factory=rtc.Room)
    identity: str = ""
    room_name: str = ""
    speech_onsets: list[float] = field(default_factory=list)
    _queue: list[np.ndarray] = field(default_factory=list)
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    # --- connection ---

    async def join(self, body: dict[str, Any] | None = None, *, timeout: float = 15.0) -> None:
        async with httpx.AsyncClient(timeout=timeout) as client:
            headers = {"Authorization": f"Bearer {self.bearer}"} if self.bearer else {}
            r = await client.post(self.token_url, json=body or {}, headers=headers)
            r.raise_for_status()
            details = r.json()
        self.room_name = details["room_name"]
        self.room.on("track_subscribed", self._on_track_subscribed)
        self.room.on("participant_attributes_changed", lambda *_: self._notify())
        self.room.on("participant_connected", lambda *_: self._notify())
        self.room.on("participant_disconnected", lambda *_: self._notify())
        self.room.on("disconnected", lambda *_: self._notify())
        self.room.register_text_stream_handler("lk.transcription", self._on_transcription)
        await asyncio.wait_for(
            self.room.connect(details["server_url"], details["participant_token"]), timeout
        )
        self.identity = self.room.local_participant.identity
        await self._start_microphone()

    async def leave(self, timeout: float = 10.0) -> None:
        """Disconnect; bounded, so a stuck native call can't hang a test's teardown."""
        for t in self._tasks:
            t.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout)
        self._tasks.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.room.disconnect(), timeout)

    # --- microphone ---

    async def _start_microphone(self) -> None:
        self._source = rtc.AudioSource(SAMPLE_RATE, 1, queue_size_ms=50)
        track = rtc.LocalAudioTrack.create_audio_track("mic", self._source)
        opts = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        await self.room.local_participant.publish_track(track, opts)
        self._tasks.append(asyncio.create_task(self._mic_loop()))

    async def _mic_loop(self) -> None:
        silence = np.zeros(SAMPLES_PER_FRAME, dtype=np.int16)
        frame = rtc.AudioFrame.create(SAMPLE_RATE, 1, SAMPLES_PER_FRAME)
        buf = np.frombuffer(frame.data, dtype=np.int16)
        pos = 0
        while True:
            if self._queue:
                clip = self._queue[0]
                if pos == 0:
                    self.speech_onsets.append(time.monotonic())
                chunk = clip[pos : pos + SAMPLES_PER_FRAME]
                pos += SAMPLES_PER_FRAME
                if pos >= len(clip):
                    self._queue.pop(0)
                    pos = 0
                buf[:] = 0
                buf[: len(chunk)] = chunk
            else:
                buf[:] = silence
            # capture_frame paces us at real time once the source's small queue is full
            await self._source.capture_frame(frame)

    def say(self, pcm: np.ndarray) -> None:
        """Queue speech (48 kHz mono int16) on the microphone."""
        self._queue.append(pcm)

    async def say_and_wait(self, pcm: np.ndarray, timeout: float = 30.0) -> None:
        self.say(pcm)
        deadline = time.monotonic() + timeout
        while self._queue:
            if time.monotonic() > deadline:
                raise TimeoutError("speech was not played out")
            await asyncio.sleep(FRAME_MS / 1000)  # pacing: the mic itself is real-time

    async def send_chat(self, text: str) -> None:
        await self.room.local_participant.send_text(text, topic="lk.chat")

    # --- what the user observes ---

    def _notify(self) -> None:
        self._changed.set()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    def agent(self) -> rtc.RemoteParticipant | None:
        for p in self.room.remote_participants.values():
            if p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT:
                return p
        return None

    async def wait_for_agent(self, timeout: float = 20.0) -> rtc.RemoteParticipant:
        await self.wait_until(lambda: self.agent() is not None, timeout, "the agent to join")
        agent = self.agent()
        assert agent is not None
        return agent

    def agent_attribute(self, name: str) -> str | None:
        agent = self.agent()
        return None if agent is None else agent.attributes.get(name)

    def voiced_seconds(self, since: float = 0.0) -> float:
        return sum(
            f.samples / SAMPLE_RATE
            for f in self.audio_frames
            if f.at >= since and f.rms > VOICED_RMS
        )

    def first_voiced_at(self, since: float = 0.0) -> float | None:
        return next((f.at for f in self.audio_frames if f.at >= since and f.rms > VOICED_RMS), None)

    async def wait_for_agent_audio(
        self, seconds: float, timeout: float, since: float = 0.0
    ) -> None:
        await self.wait_until(
            lambda: self.voiced_seconds(since) >= seconds, timeout, f"{seconds}s of agent audio"
        )

    def agent_transcript(self) -> str:
        return " ".join(
            s.text for s in self.segments.values() if s.identity != self.identity and s.text
        )

    def _on_track_subscribed(
        self,
        track: rtc.Track,
        publication: rtc.RemoteTrackPublication,
        participant: rtc.RemoteParticipant,
    ) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO:
            self._tasks.append(asyncio.create_task(self._receive_audio(track)))
        self._notify()

    async def _receive_audio(self, track: rtc.Track) -> None:
        stream = rtc.AudioStream(
            track, sample_rate=SAMPLE_RATE, num_channels=1, frame_size_ms=FRAME_MS
        )
        async for ev in stream:
            pcm = np.frombuffer(ev.frame.data, dtype=np.int16).astype(np.float32)
            rms = float(np.sqrt(np.mean(pcm * pcm))) if len(pcm) else 0.0
            self.audio_frames.append(ReceivedFrame(time.monotonic(), rms, len(pcm)))
            if rms > VOICED_RMS:
                self._notify()

    def _on_transcription(self, reader: rtc.TextStreamReader, identity: str) -> None:
        self._tasks.append(asyncio.create_task(self._read_transcription(reader, identity)))

    async def _read_transcription(self, reader: rtc.TextStreamReader, identity: str) -> None:
        attrs = reader.info.attributes or {}
        seg_id = attrs.get("lk.segment_id", reader.info.stream_id)
        seg = self.segments.setdefault(seg_id, TranscriptSegment(identity, seg_id))
        # Each stream carries a segment's text from its start; a later stream for the same
        # segment (interim → final) replaces the earlier text.
        text = ""
        async for chunk in reader:
            text += chunk
            seg.text = text
            self._notify()
        seg.final = (reader.info.attributes or {}).get("lk.transcription_final") == "true"
        self._notify()

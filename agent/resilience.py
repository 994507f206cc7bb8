"""What kaiwa does when Gemini cannot be kept: clear log lines, and an honest goodbye.

The reconnect mechanics live in `agent/gemini/`. When the realtime session is lost for
good, this module tells the caller in plain words — spoken (a pre-recorded clip, since the
voice model is what failed), on the page (`kaiwa.notice` attribute) and in the
transcript — then ends the call cleanly.
"""

from __future__ import annotations

import asyncio
import json
import logging
import wave
from pathlib import Path

import numpy as np
from livekit import rtc
from livekit.agents import AgentSession, CloseEvent, CloseReason, JobContext

logger = logging.getLogger("kaiwa.resilience")

ASSETS = Path(__file__).resolve().parent / "assets"
NOTICE_ATTRIBUTE = "kaiwa.notice"

UNAVAILABLE_TEXT = {
    "en": "Sorry, the voice service is unavailable right now, so I have to end this call. "
    "Please try again in a few minutes.",
    "ja": "申し訳ありません。音声サービスに接続できないため、通話を終了します。"
    "しばらくしてからもう一度お試しください。",
}


def _languages(language: str | None) -> list[str]:
    if language and language.lower().startswith("ja"):
        return ["ja"]
    if language:
        return ["en"]
    return ["ja", "en"]  # unknown caller language: both, Japanese first


def _load_clip(lang: str) -> np.ndarray:
    with wave.open(str(ASSETS / f"unavailable_{lang}.wav"), "rb") as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


async def tell_caller_unavailable(room: rtc.Room, language: str | None) -> None:
    """Show, write and say that the call must end; returns when the clip has played."""
    langs = _languages(language)
    text = " ".join(UNAVAILABLE_TEXT[lang] for lang in langs)
    local = room.local_participant
    try:
        await local.set_attributes(
            {NOTICE_ATTRIBUTE: json.dumps({"level": "error", "text": text}, ensure_ascii=False)}
        )
        await local.send_text(
            text,
            topic="lk.transcription",
            attributes={"lk.transcription_final": "true", "lk.segment_id": "kaiwa-unavailable"},
        )
    except Exception as e:  # the room may be going away too; the log line still stands
        logger.warning("could not show the unavailable notice: %s", e)
    await _play(room, [_load_clip(lang) for lang in langs])


async def _play(room: rtc.Room, clips: list[np.ndarray], rate: int = 16000) -> None:
    source = rtc.AudioSource(rate, 1)
    track = rtc.LocalAudioTrack.create_audio_track("kaiwa-notice", source)
    try:
        pub = await room.local_participant.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        )
        await asyncio.wait_for(pub.wait_for_subscription(), 5)
        step = rate // 50  # 20 ms frames
        for pcm in clips:
            for i in range(0, len(pcm), step):
                chunk = pcm[i : i + step]
                frame = rtc.AudioFrame.create(rate, 1, step)
                np.frombuffer(frame.data, dtype=np.int16)[: len(chunk)] = chunk
                await source.capture_frame(frame)
        await source.wait_for_playout()
    except Exception as e:
        logger.warning("could not play the unavailable notice: %s", e)
    finally:
        await source.aclose()


def end_call_when_model_lost(session: AgentSession, ctx: JobContext, language: str | None) -> None:
    """When the session closes on an unrecoverable model error, say so and end the call."""

    tasks: set[asyncio.Task[None]] = set()

    def on_close(ev: CloseEvent) -> None:
        if ev.reason != CloseReason.ERROR:
            return
        logger.error("ending the call: the realtime model could not be kept (%s)", ev.error)

        async def goodbye() -> None:
            try:
                await tell_caller_unavailable(ctx.room, language)
            finally:
                # leave at once (the caller sees the agent go), then end the job
                await ctx.room.disconnect()
                ctx.shutdown("gemini unavailable")

        task = asyncio.create_task(goodbye())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    session.on("close", on_close)

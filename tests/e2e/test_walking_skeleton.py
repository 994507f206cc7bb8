"""The whole product path, offline: a WebRTC participant → livekit-server → the worker →
Gemini Live (the fake) → audio back to the participant."""

from __future__ import annotations

import time

from tests.fakes.gemini_live import GeminiLiveFake
from tests.support.caller import Caller, load_wav
from tests.support.stack import ROOT

from .conftest import AGENT_NAME, TEST_INSTRUCTIONS, TEST_VOICE, fresh_conversation

SPEECH = ROOT / "tests" / "fixtures" / "speech_en.wav"
REPLY_SECONDS = 2.0


async def test_participant_talks_to_agent_end_to_end(
    caller: Caller, gemini: GeminiLiveFake
) -> None:
    started = time.monotonic()
    await caller.join()

    # The agent joined through explicit dispatch in the token.
    agent = await caller.wait_for_agent(timeout=20)
    assert agent.attributes.get("lk.agent.name", AGENT_NAME) == AGENT_NAME

    # The worker opened a Gemini session with the configured model, voice and instructions.
    conv = await fresh_conversation(gemini, since=started, timeout=20)
    conv.auto = False
    assert conv.model == "models/gemini-3.8-live"
    assert conv.voice == TEST_VOICE
    assert TEST_INSTRUCTIONS in (conv.system_instruction or "")

    # The greeting request arrives; the fake answers it and the caller hears it.
    await conv.wait_for_greeting_request(timeout=15)
    greeting_at = time.monotonic()
    await conv.speak(text="Hello, this is kaiwa.", seconds=REPLY_SECONDS)
    await caller.wait_for_agent_audio(seconds=1.0, timeout=15, since=greeting_at)

    # The caller speaks; Gemini gets at least a second of it, non-silent.
    await caller.say_and_wait(load_wav(SPEECH))
    await conv.wait_for_voiced_audio(seconds=1.0, timeout=15)

    # The fake replies; the caller hears roughly the scripted duration...
    reply_at = time.monotonic()
    result = await conv.speak(
        text="Sure, I can help with your hard disk.",
        seconds=REPLY_SECONDS,
        input_transcript="My hard disk stopped working.",
    )
    assert not result.interrupted
    await caller.wait_for_agent_audio(seconds=REPLY_SECONDS * 0.7, timeout=15, since=reply_at)
    heard = caller.voiced_seconds(since=reply_at)
    assert REPLY_SECONDS * 0.7 <= heard <= REPLY_SECONDS * 1.5, heard

    # ...and reads the agent's words on lk.transcription.
    await caller.wait_until(
        lambda: "help with your hard disk" in caller.agent_transcript(),
        timeout=15,
        what="the agent's transcript",
    )

    # Typed text on lk.chat reaches Gemini.
    await caller.send_chat("Please call me back tomorrow.")
    text = await conv.wait_for_user_text(timeout=15)
    assert "call me back tomorrow" in text

    print(f"end-to-end conversation took {time.monotonic() - started:.1f}s")

"""Push-to-talk (KAIWA_TURN_MODE=push_to_talk) against the real livekit-server and worker.

A staff participant (the console's role) publishes real speech. Said while the talk key
is not held it never reaches the fake at all (no audio, no activity, no turn); said while
held it arrives between activityStart and activityEnd, and the fake answers the release.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.push_to_talk import PTT_END_RPC, PTT_START_RPC, TURN_MODE_ATTRIBUTE
from tests.fakes.gemini_live import FakeConversation, GeminiLiveFake
from tests.support.caller import Caller, load_wav
from tests.support.stack import (
    ROOT,
    STAFF_KEY,
    LiveKitServer,
    TokenServer,
    Worker,
    staff_tokens_env,
    worker_env,
)

from .conftest import fresh_conversation

AGENT = "kaiwa-ptt"
SPEECH = ROOT / "tests" / "fixtures" / "speech_en.wav"


@pytest.fixture(scope="module")
async def ptt_worker(
    livekit: LiveKitServer, gemini: GeminiLiveFake, stack_dir: Path
) -> AsyncIterator[Worker]:
    env = worker_env(
        livekit,
        gemini.env(),
        KAIWA_AGENT_NAME=AGENT,
        KAIWA_DESK_DB=str(stack_dir / "ptt.sqlite3"),
        KAIWA_TURN_MODE="push_to_talk",
        KAIWA_LANGUAGE="en-US",
    )
    proc = Worker(env, stack_dir, name="worker-ptt")
    await proc.start_and_register()
    yield proc
    await proc.stop()


@pytest.fixture(scope="module")
async def ptt_tokens(livekit: LiveKitServer, stack_dir: Path) -> AsyncIterator[TokenServer]:
    env = worker_env(livekit, {}, KAIWA_AGENT_NAME=AGENT, **staff_tokens_env())
    proc = TokenServer(env, stack_dir)
    await proc.start_ready()
    yield proc
    await proc.stop()


async def rpc(caller: Caller, method: str) -> dict[str, object]:
    agent = caller.agent()
    assert agent is not None
    out = await caller.room.local_participant.perform_rpc(
        destination_identity=agent.identity, method=method, payload="{}", response_timeout=5.0
    )
    answer = json.loads(out)
    assert isinstance(answer, dict)
    return answer


def voiced_between(conv: FakeConversation, t0: float, t1: float) -> float:
    return sum(c.voiced_seconds for c in conv.audio if t0 <= c.at <= t1)


async def test_audio_reaches_gemini_only_while_the_key_is_held(
    ptt_worker: Worker, ptt_tokens: TokenServer, gemini: GeminiLiveFake
) -> None:
    speech = load_wav(SPEECH)
    caller = Caller(f"{ptt_tokens.url}/token", bearer=STAFF_KEY)
    joined = time.monotonic()
    await caller.join()
    try:
        await caller.wait_for_agent(timeout=20)
        await caller.wait_until(
            lambda: caller.agent_attribute(TURN_MODE_ATTRIBUTE) == "push_to_talk",
            10,
            "the agent's turn mode attribute",
        )
        conv = await fresh_conversation(gemini, since=joined, timeout=20)
        assert conv.manual_activity, "automatic activity detection must be off"
        await conv.wait_for_greeting_request(timeout=15)
        await caller.wait_for_agent_audio(1.0, timeout=15)  # the greeting plays
        await asyncio.sleep(2.5)  # and ends

        # 1. not held: a bystander's speech goes nowhere
        before = time.monotonic()
        chunks = len(conv.audio)
        await caller.say_and_wait(speech)
        await asyncio.sleep(1.5)
        assert len(conv.audio) == chunks, "audio was sent while the key was up"
        assert voiced_between(conv, before, time.monotonic()) == 0.0
        assert not conv.activity, conv.activity
        assert not conv.user_turns, conv.user_turns
        replies = len(conv.speeches)

        # 2. held: the speech arrives between activityStart and activityEnd
        assert await rpc(caller, PTT_START_RPC) == {"ok": True, "held": True}
        await caller.say_and_wait(speech)
        await asyncio.sleep(0.4)
        assert await rpc(caller, PTT_END_RPC) == {"ok": True, "held": False}
        start = await conv.wait_for_activity("activityStart", timeout=5)
        end = await conv.wait_for_activity("activityEnd", timeout=5)
        assert start.at < end.at
        assert voiced_between(conv, start.at, end.at) >= 1.0
        assert voiced_between(conv, 0.0, start.at) == 0.0
        # the fake answers the release, once: no extra reply request rides along
        released = time.monotonic()
        await caller.wait_for_agent_audio(1.0, timeout=15, since=released)
        await asyncio.sleep(1.0)
        assert len(conv.speeches) == replies + 1, conv.speeches
        assert not [c for c in conv.client_contents if c.at > start.at and c.turn_complete]

        # 3. released again: nothing more is sent
        await asyncio.sleep(0.5)
        after = time.monotonic()
        chunks = len(conv.audio)
        await caller.say_and_wait(speech)
        await asyncio.sleep(1.5)
        assert len(conv.audio) == chunks, "audio was sent after the release"
        assert voiced_between(conv, after, time.monotonic()) == 0.0
        assert [a.kind for a in conv.activity] == ["activityStart", "activityEnd"]
        conv.assert_no_protocol_errors()
    finally:
        await caller.leave()


async def test_a_release_without_a_press_sends_nothing(
    ptt_worker: Worker, ptt_tokens: TokenServer, gemini: GeminiLiveFake
) -> None:
    caller = Caller(f"{ptt_tokens.url}/token", bearer=STAFF_KEY)
    joined = time.monotonic()
    await caller.join()
    try:
        await caller.wait_for_agent(timeout=20)
        conv = await fresh_conversation(gemini, since=joined, timeout=20)
        await conv.wait_for_greeting_request(timeout=15)
        await caller.wait_until(
            lambda: caller.agent_attribute(TURN_MODE_ATTRIBUTE) == "push_to_talk",
            10,
            "the agent's turn mode attribute",
        )
        # releasing a key that is not held is harmless and sends nothing
        assert await rpc(caller, PTT_END_RPC) == {"ok": True, "held": False}
        await asyncio.sleep(0.5)
        assert not conv.activity
    finally:
        await caller.leave()

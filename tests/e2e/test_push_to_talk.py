"""Push-to-talk against the real livekit-server and worker: the worker's mode
(KAIWA_TURN_MODE=push_to_talk, staff calls) and a credential's (kaiwa.turn_mode signed by
the token server for a counter, on a worker that is open mic for everyone else).

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

from .conftest import AGENT_NAME, fresh_conversation

AGENT = "kaiwa-ptt"
COUNTER_KEY = "counter-key-3f9a1c7e"
DESK_KEY = "desk-key-8b2d4e6f"
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


async def exercise_talk_key(caller: Caller, conv: FakeConversation) -> None:
    """Speech with the key up goes nowhere; held, it arrives between activityStart/End."""
    speech = load_wav(SPEECH)
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


async def join_with_talk_key(caller: Caller, gemini: GeminiLiveFake) -> FakeConversation:
    joined = time.monotonic()
    await caller.join()
    await caller.wait_for_agent(timeout=20)
    await caller.wait_until(
        lambda: caller.agent_attribute(TURN_MODE_ATTRIBUTE) == "push_to_talk",
        10,
        "the agent's turn mode attribute",
    )
    return await fresh_conversation(gemini, since=joined, timeout=20)


async def test_audio_reaches_gemini_only_while_the_key_is_held(
    ptt_worker: Worker, ptt_tokens: TokenServer, gemini: GeminiLiveFake
) -> None:
    caller = Caller(f"{ptt_tokens.url}/token", bearer=STAFF_KEY)
    try:
        await exercise_talk_key(caller, await join_with_talk_key(caller, gemini))
    finally:
        await caller.leave()


@pytest.fixture(scope="module")
async def counter_tokens(livekit: LiveKitServer, stack_dir: Path) -> AsyncIterator[TokenServer]:
    """Tokens for the shared open-mic worker: a counter key marked ptt, an ordinary key."""
    keys = f"{COUNTER_KEY} identity=counter-1 ptt, {DESK_KEY} identity=desk-1"
    env = worker_env(
        livekit,
        {},
        KAIWA_AGENT_NAME=AGENT_NAME,
        KAIWA_TOKEN_AUTH="bearer",
        KAIWA_TOKEN_BEARER_KEYS=keys,
        KAIWA_MAX_SESSIONS_PER_IDENTITY="0",
    )
    proc = TokenServer(env, stack_dir, name="token-server-counter")
    await proc.start_ready()
    yield proc
    await proc.stop()


async def test_a_counter_credential_gets_the_talk_key_on_an_open_mic_worker(
    worker: Worker, counter_tokens: TokenServer, gemini: GeminiLiveFake
) -> None:
    """Per participant: the worker runs open mic (KAIWA_TURN_MODE=auto), but a caller whose
    token says kaiwa.turn_mode=push_to_talk (bearer key `ptt`) talks only while holding it."""
    counter = Caller(f"{counter_tokens.url}/token", bearer=COUNTER_KEY)
    try:
        await exercise_talk_key(counter, await join_with_talk_key(counter, gemini))
    finally:
        await counter.leave()

    # the same worker, an ordinary credential: open mic, Gemini's own activity detection
    desk = Caller(f"{counter_tokens.url}/token", bearer=DESK_KEY)
    joined = time.monotonic()
    await desk.join()
    try:
        await desk.wait_for_agent(timeout=20)
        conv = await fresh_conversation(gemini, since=joined, timeout=20)
        await conv.wait_for_greeting_request(timeout=15)
        assert not conv.manual_activity
        assert desk.agent_attribute(TURN_MODE_ATTRIBUTE) is None
        await desk.say_and_wait(load_wav(SPEECH))
        await conv.wait_for_user_turn_end(timeout=10)
    finally:
        await desk.leave()


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

"""kaiwa on Gemini 3.8 Live (GA): the setup the 3.8 family accepts, every tool declared with
its own behaviour (3.8 would make them all non-blocking), a greeting, and a conversation
with a tool call — against the fake in 3.8 mode, real livekit-server and worker."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from desk import Desk
from tests.fakes.gemini_live import GeminiLiveFake
from tests.support.caller import Caller
from tests.support.stack import (
    STAFF_KEY,
    LiveKitServer,
    TokenServer,
    Worker,
    staff_tokens_env,
    worker_env,
)

from .conftest import fresh_conversation

AGENT = "kaiwa-38"
MODEL = "gemini-3.8-live"


@pytest.fixture(scope="module")
def db38(stack_dir: Path) -> Path:
    return stack_dir / "desk38.sqlite3"


@pytest.fixture(scope="module")
async def worker38(
    livekit: LiveKitServer, gemini: GeminiLiveFake, stack_dir: Path, db38: Path
) -> AsyncIterator[Worker]:
    env = worker_env(
        livekit, gemini.env(), KAIWA_AGENT_NAME=AGENT, KAIWA_MODEL=MODEL, KAIWA_DESK_DB=str(db38)
    )
    proc = Worker(env, stack_dir, name="worker-38")
    await proc.start_and_register()
    yield proc
    await proc.stop()


@pytest.fixture(scope="module")
async def tokens38(livekit: LiveKitServer, stack_dir: Path) -> AsyncIterator[TokenServer]:
    env = worker_env(livekit, {}, KAIWA_AGENT_NAME=AGENT, **staff_tokens_env())
    proc = TokenServer(env, stack_dir)
    await proc.start_ready()
    yield proc
    await proc.stop()


async def test_a_conversation_with_a_tool_call_on_38(
    worker38: Worker, tokens38: TokenServer, gemini: GeminiLiveFake, db38: Path
) -> None:
    caller = Caller(f"{tokens38.url}/token", bearer=STAFF_KEY)
    joined = time.monotonic()
    await caller.join()
    try:
        await caller.wait_for_agent(timeout=20)
        conv = await fresh_conversation(gemini, since=joined, timeout=20)
        assert conv.model_family == "3.8" and conv.setup_info.refusal() is None
        behaviors = conv.tool_behaviors
        # declared explicitly: the writes block, the slow lab lookup runs in the background
        assert behaviors["create_case"] == "BLOCKING" and behaviors["confirm_action"] == "BLOCKING"
        assert behaviors["check_lab_progress"] == "NON_BLOCKING"
        conv.auto = False
        await conv.wait_for_greeting_request(timeout=15)
        since = time.monotonic()
        await conv.speak(text="Hello, this is kaiwa.", seconds=0.8)
        await caller.wait_for_agent_audio(seconds=0.5, timeout=10, since=since)

        response = await conv.call_tool(
            "create_case", {"customer_name": "Gemini Three", "device_type": "SSD", "symptom": "x"}
        )
        assert "output" in response and "R-" in str(response), response
        since = time.monotonic()
        await conv.speak(text="Your case is open.", seconds=0.8)
        await caller.wait_for_agent_audio(seconds=0.5, timeout=10, since=since)
        conv.assert_no_protocol_errors()
    finally:
        await caller.leave()
    cases = Desk.open(db38).find_cases(name="Gemini Three")
    assert len(cases) == 1

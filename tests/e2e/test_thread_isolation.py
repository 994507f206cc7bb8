"""Two calls in one worker process (KAIWA_JOB_EXECUTOR=thread) do not see each other: the
running tool of one never shows in the other's tool indicator, and a confirmation proposed
in one cannot be confirmed from the other. Per-call state lives on the call (CallState)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from desk import Desk
from tests.fakes.gemini_live import FakeConversation, GeminiLiveFake
from tests.support.caller import Caller
from tests.support.responses import tool_output
from tests.support.stack import (
    STAFF_KEY,
    LiveKitServer,
    TokenServer,
    Worker,
    staff_tokens_env,
    worker_env,
)

from .conftest import fresh_conversation

AGENT = "kaiwa-threads"


@pytest.fixture(scope="module")
def thread_db(stack_dir: Path) -> Path:
    return stack_dir / "threads.sqlite3"


@pytest.fixture(scope="module")
async def thread_worker(
    livekit: LiveKitServer, gemini: GeminiLiveFake, stack_dir: Path, thread_db: Path
) -> AsyncIterator[Worker]:
    env = worker_env(
        livekit,
        gemini.env(),
        KAIWA_AGENT_NAME=AGENT,
        KAIWA_JOB_EXECUTOR="thread",
        KAIWA_DESK_DB=str(thread_db),
        KAIWA_LAB_DELAY_S="4",
    )
    proc = Worker(env, stack_dir, name="worker-threads")
    await proc.start_and_register()
    yield proc
    await proc.stop()


@pytest.fixture(scope="module")
async def thread_tokens(livekit: LiveKitServer, stack_dir: Path) -> AsyncIterator[TokenServer]:
    env = worker_env(livekit, {}, KAIWA_AGENT_NAME=AGENT, **staff_tokens_env())
    proc = TokenServer(env, stack_dir)
    await proc.start_ready()
    yield proc
    await proc.stop()


async def join(tokens: TokenServer, gemini: GeminiLiveFake) -> tuple[Caller, FakeConversation]:
    caller = Caller(f"{tokens.url}/token", bearer=STAFF_KEY)
    since = time.monotonic()
    await caller.join()
    await caller.wait_for_agent(timeout=20)
    conv = await fresh_conversation(gemini, since=since, timeout=20)
    conv.auto = False
    await conv.wait_for_greeting_request(timeout=15)
    await conv.speak(text="Hello.", seconds=0.4)
    return caller, conv


async def test_two_calls_in_one_process_do_not_share_state(
    thread_worker: Worker, thread_tokens: TokenServer, gemini: GeminiLiveFake, thread_db: Path
) -> None:
    a, conv_a = await join(thread_tokens, gemini)
    b, conv_b = await join(thread_tokens, gemini)
    try:
        case = Desk.open(thread_db).create_case(
            customer_name="Thread Test", device_type="SSD", symptom="isolation"
        )
        # a slow tool in call A: A's indicator shows it, B's never does
        call_id = await conv_a.send_tool_call("check_lab_progress", {"case_id": case.id})
        await a.wait_until(
            lambda: "check_lab_progress" in (a.agent_attribute("kaiwa.tools") or ""),
            timeout=10,
            what="A's tool indicator",
        )
        assert "check_lab_progress" not in (b.agent_attribute("kaiwa.tools") or "")
        await conv_a.wait_for_tool_response(call_id, timeout=15)

        # a confirmation proposed in A cannot be confirmed from B
        Desk.open(thread_db).update_status(case.id, "diagnosing")
        proposal = tool_output(
            await conv_a.call_tool("set_quote", {"case_id": case.id, "amount_yen": "30000"})
        )
        stolen = await conv_b.call_tool(
            "confirm_action", {"confirmation_id": proposal["confirmation_id"]}
        )
        assert "no pending action" in json.dumps(stolen), stolen
        assert Desk.open(thread_db).get_case(case.id).quote_yen is None
        await conv_a.speak(text="Shall I set it?", seconds=0.4)
        await conv_b.speak(text="Sorry.", seconds=0.4)
    finally:
        await a.leave()
        await b.leave()

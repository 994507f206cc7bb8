"""Gemini faults injected by the fake, against the real livekit-server + worker.

Each test asserts what the caller observes — the conversation continues on the same
Gemini conversation (resumption handle), nothing is lost, or an honest goodbye — and
prints the measured recovery time (collected in docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from desk import Desk
from tests.fakes.gemini_live import FakeConversation, GeminiLiveFake, speech_like_pcm
from tests.support.caller import Caller, load_wav
from tests.support.responses import tool_output
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

AGENT = "kaiwa-faults"
SPEECH = ROOT / "tests" / "fixtures" / "speech_en.wav"
SETUP_TIMEOUT_S = 2.0
STALL_TIMEOUT_S = 2.0


@pytest.fixture(scope="module")
def fault_db(stack_dir: Path) -> Path:
    return stack_dir / "faults.sqlite3"


def count(db: Path, sql: str, *params: object) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(sql, params).fetchone()[0])


def cases_named(db: Path, name: str) -> int:
    return count(db, "SELECT count(*) FROM cases WHERE customer_name = ?", name)


@pytest.fixture(scope="module")
async def fault_worker(
    livekit: LiveKitServer, gemini: GeminiLiveFake, stack_dir: Path
) -> AsyncIterator[Worker]:
    env = worker_env(
        livekit,
        gemini.env(),
        KAIWA_AGENT_NAME=AGENT,
        KAIWA_DESK_DB=str(stack_dir / "faults.sqlite3"),
        KAIWA_SETUP_TIMEOUT_S=str(SETUP_TIMEOUT_S),
        KAIWA_STALL_TIMEOUT_S=str(STALL_TIMEOUT_S),
        KAIWA_MAX_RECONNECTS="4",
        KAIWA_RECONNECT_WINDOW_S="30",
        KAIWA_GO_AWAY_MARGIN_S="1",
        KAIWA_LAB_DELAY_S="1.5",
        KAIWA_LANGUAGE="en-US",  # one goodbye clip, not both languages
        # the 2.5 family here; the default (3.8) runs in the other e2e modules
        KAIWA_MODEL="gemini-2.5-flash-native-audio-preview-12-2025",
    )
    proc = Worker(env, stack_dir, name="worker-faults")
    await proc.start_and_register()
    yield proc
    await proc.stop()


@pytest.fixture(scope="module")
async def fault_tokens(livekit: LiveKitServer, stack_dir: Path) -> AsyncIterator[TokenServer]:
    # staff calls: these tests operate the whole desk (caller mode: test_caller_mode.py)
    env = worker_env(livekit, {}, KAIWA_AGENT_NAME=AGENT, **staff_tokens_env())
    proc = TokenServer(env, stack_dir)
    await proc.start_ready()
    yield proc
    await proc.stop()


@pytest.fixture
async def call(
    fault_worker: Worker, fault_tokens: TokenServer, gemini: GeminiLiveFake
) -> AsyncIterator[tuple[Caller, FakeConversation]]:
    caller = Caller(f"{fault_tokens.url}/token", bearer=STAFF_KEY)
    joined = time.monotonic()
    await caller.join()
    await caller.wait_for_agent(timeout=20)
    conv = await fresh_conversation(gemini, since=joined, timeout=20)
    conv.auto = False
    await conv.wait_for_greeting_request(timeout=15)
    await conv.speak(text="Hello.", seconds=0.6)
    yield caller, conv
    await caller.leave()
    # nothing kaiwa sent was refused: no unknown or twice-answered call id
    conv.assert_no_protocol_errors()


def greeting_requests(conv: FakeConversation) -> int:
    return sum(1 for c in conv.client_contents if c.turn_complete)


async def close_and_measure(conv: FakeConversation, code: int) -> float:
    """Close the live connection; return seconds until the next one is set up."""
    n = len(conv.connections)
    closed_at = time.monotonic()
    await conv.close(code=code, reason="injected by test")
    conn = await conv.wait_for_connection(count=n + 1, timeout=30)
    assert conn.setup_complete_at is not None
    return conn.setup_complete_at - closed_at


async def conversation_continues(caller: Caller, conv: FakeConversation) -> None:
    """The caller speaks and hears a reply on the current connection."""
    since = time.monotonic()
    await caller.say_and_wait(load_wav(SPEECH))
    await conv.wait_for_voiced_audio(seconds=1.0, timeout=15, since=since)
    heard_from = time.monotonic()
    await conv.speak(text="Still here.", seconds=1.0)
    await caller.wait_for_agent_audio(seconds=0.7, timeout=15, since=heard_from)


async def test_1011_mid_speech_resumes_same_conversation(
    call: tuple[Caller, FakeConversation],
) -> None:
    caller, conv = call
    speaking = asyncio.create_task(conv.speak(text="A long explanation.", seconds=4.0))
    await caller.wait_for_agent_audio(seconds=0.5, timeout=10)
    recovery = await close_and_measure(conv, 1011)
    with contextlib.suppress(Exception):
        await speaking
    # resumed with the latest handle: same conversation, no second greeting
    assert conv.connections[-1].resumed_latest
    await conversation_continues(caller, conv)
    assert greeting_requests(conv) == 1
    print(f"recovery 1011 mid-speech: {recovery:.2f}s")


async def test_caller_audio_during_reconnect_reaches_gemini(
    call: tuple[Caller, FakeConversation],
) -> None:
    caller, conv = call
    speech = load_wav(SPEECH)
    since = time.monotonic()
    caller.say(speech)  # the caller is talking when the connection drops
    await conv.wait_for_voiced_audio(seconds=0.3, timeout=10)
    recovery = await close_and_measure(conv, 1011)
    await conv.wait_for_user_turn_end(timeout=20)
    # the clip holds ~3 s of voiced speech. Real Gemini keeps nothing sent after the handle
    # it resumes from, so only audio that the resumed conversation kept counts: kaiwa
    # re-sends the caller's unanswered turn after the resume.
    kept = sum(c.voiced_seconds for c in conv.audio if not c.lost and c.at >= since)
    assert kept >= 2.4, kept
    print(f"recovery 1011 while caller speaks: {recovery:.2f}s, kept {kept:.1f}s of speech")


async def test_1011_between_tool_call_and_response_has_one_effect(
    call: tuple[Caller, FakeConversation], fault_db: Path
) -> None:
    """The resumed session never issued the call (its handle predates it): kaiwa gives it
    the result as text, once, and never answers the forgotten id; one case exists."""
    caller, conv = call
    n = len(conv.connections)
    args = {"customer_name": "Eleven Eleven", "device_type": "SSD", "symptom": "1011 test"}
    call_id = await conv.send_tool_call("create_case", args)
    closed_at = time.monotonic()
    await conv.close(code=1011, reason="injected by test")
    conn = await conv.wait_for_connection(count=n + 1, timeout=30)
    told = await conv.wait_for_client_content(
        lambda c: not c.lost and "create_case" in json.dumps(c.raw), timeout=15
    )
    assert told.turn_complete and "R-" in json.dumps(told.raw)
    await conv.speak(text="Your case is open.", seconds=0.6)
    assert cases_named(fault_db, "Eleven Eleven") == 1
    answers = conv.tool_response_counts.get(call_id, 0)
    texts = [c for c in conv.client_contents if "create_case" in json.dumps(c.raw)]
    assert answers <= 1 and len(texts) == 1 and conn.resumed_latest
    await conversation_continues(caller, conv)
    print(
        f"recovery 1011 between tool call and response: {conn.setup_complete_at - closed_at:.2f}s"
        f" (toolResponses on the old socket: {answers}, result as text: 1, cases: 1)"
    )


async def test_go_away_while_a_tool_runs_moves_after_its_answer(
    call: tuple[Caller, FakeConversation], fault_db: Path
) -> None:
    caller, conv = call
    n = len(conv.connections)
    args = {"customer_name": "Go Away", "device_type": "HDD", "symptom": "goaway test"}
    call_id = await conv.send_tool_call("create_case", args)
    sent_at = time.monotonic()
    await conv.go_away(time_left_s=8.0)
    response = await conv.wait_for_tool_response(call_id, timeout=10)
    assert "output" in response, response
    conn = await conv.wait_for_connection(count=n + 1, timeout=15)
    # moved only after the answer, onto a handle that covers it
    assert conn.opened_at >= (conv.tool_calls[call_id].response_at or 0)
    assert conn.resumed_latest
    await conv.speak(text="Done.", seconds=0.5)
    assert conv.tool_response_counts[call_id] == 1
    assert cases_named(fault_db, "Go Away") == 1
    await conversation_continues(caller, conv)
    print(f"GoAway while a tool runs: moved {conn.opened_at - sent_at:.2f}s later, one effect")


async def test_the_same_call_id_twice_makes_one_row(
    call: tuple[Caller, FakeConversation], fault_db: Path
) -> None:
    _, conv = call
    args = {"customer_name": "Twice Asked", "device_type": "SD card", "symptom": "asked twice"}
    call_id = await conv.send_tool_call("create_case", args)
    first = await conv.wait_for_tool_response(call_id, timeout=10)
    await conv.speak(text="Opened.", seconds=0.4)
    await conv.send_tool_calls([("create_case", args)], reuse_ids=[call_id])
    await conv.fake.wait_until(
        lambda: conv.tool_response_counts.get(call_id) == 2, timeout=10, what="second answer"
    )
    await conv.speak(text="Same case.", seconds=0.4)
    second = conv.tool_calls[call_id].response or {}
    case_ids = {m for r in (first, second) for m in re.findall(r"R-\d+", json.dumps(r))}
    assert len(case_ids) == 1, (first, second)  # the second answer is the first result
    assert cases_named(fault_db, "Twice Asked") == 1


async def test_a_cancelled_tool_mid_write_commits_nothing(
    call: tuple[Caller, FakeConversation], fault_db: Path
) -> None:
    caller, conv = call
    case = Desk.open(fault_db).create_case(
        customer_name="Cancel Me", device_type="HDD", symptom="cancel test"
    )
    lock = sqlite3.connect(fault_db, timeout=0, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # the worker's write now waits for the lock
    try:
        call_id = await conv.send_tool_call("add_note", {"case_id": case.id, "text": "ghost"})
        await caller.wait_until(
            lambda: "add_note" in (caller.agent_attribute("kaiwa.tools") or ""),
            timeout=10,
            what="add_note running",
        )
        await conv.cancel_tool_calls([call_id])
        await caller.wait_until(
            lambda: "add_note" not in (caller.agent_attribute("kaiwa.tools") or ""),
            timeout=10,
            what="add_note stopped",
        )
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    # the worker's thread now gets the lock; its guard refuses the COMMIT. There is no
    # event for "did not happen": give it well over the time a commit takes.
    await asyncio.sleep(1.5)
    assert count(fault_db, "SELECT count(*) FROM notes WHERE text = ?", "ghost") == 0
    assert conv.tool_response_counts.get(call_id, 0) == 0


async def test_no_answer_after_the_callers_turn_is_recovered(
    call: tuple[Caller, FakeConversation],
) -> None:
    """The "session hang": Gemini's VAD ends the turn and nothing ever comes."""
    caller, conv = call
    conv.auto = True  # answers user turns, except the next one
    conv.ignore_next_user_turns(1)
    n = len(conv.connections)
    await caller.say_and_wait(load_wav(SPEECH))
    done_speaking = time.monotonic()
    await caller.wait_for_agent_audio(seconds=0.5, timeout=15, since=done_speaking)
    heard_after = (caller.first_voiced_at(since=done_speaking) or time.monotonic()) - done_speaking
    assert heard_after < 10.0, heard_after
    assert len(conv.connections) > n and conv.connections[-1].resumed_latest
    assert conv.ignored_user_turns and conv.user_turns[-1].ignored is False
    print(f"no answer after the caller's turn: heard a reply {heard_after:.1f}s after speaking")


async def test_a_no_to_a_confirmation_changes_nothing(
    call: tuple[Caller, FakeConversation], fault_db: Path
) -> None:
    caller, conv = call
    desk = Desk.open(fault_db)
    case = desk.create_case(customer_name="Quote Person", device_type="SSD", symptom="quote")
    desk.update_status(case.id, "diagnosing")

    async def propose_and_answer(transcript: str) -> dict[str, object]:
        proposal = await conv.call_tool("set_quote", {"case_id": case.id, "amount_yen": "50,000"})
        pid = tool_output(proposal)["confirmation_id"]
        await conv.speak(text="The quote is fifty thousand yen. Shall I set it?", seconds=0.8)
        await caller.say_and_wait(load_wav(SPEECH))  # the caller answers after the proposal
        await conv.wait_for_user_turn_end(timeout=15)
        await conv.speak(
            text="Understood.", seconds=0.5, input_transcript=transcript, transcript_timing="late"
        )
        return await conv.call_tool("confirm_action", {"confirmation_id": pid})

    refused = await propose_and_answer("No, don't do that.")
    assert "said no" in json.dumps(refused), refused
    assert desk.get_case(case.id).quote_yen is None
    # the control: a yes does change it (so the refusal above is the answer, not a bug)
    done = await propose_and_answer("Yes, please go ahead.")
    assert "error" not in done, done
    assert desk.get_case(case.id).quote_yen == 50000


async def test_1008_on_reconnect_setup_is_retried(
    call: tuple[Caller, FakeConversation], gemini: GeminiLiveFake
) -> None:
    caller, conv = call
    n = len(conv.connections)
    gemini.fail_next_setups(1, code=1008, reason="models/x is not found for API version v1")
    closed_at = time.monotonic()
    await conv.close(code=1011, reason="injected")
    conn = await conv.wait_for_connection(count=n + 1, timeout=30)
    assert conn.setup_complete_at is not None
    await conversation_continues(caller, conv)
    print(f"recovery 1011 + 1008 on reconnect: {conn.setup_complete_at - closed_at:.2f}s")


async def test_go_away_waits_for_the_end_of_the_reply(
    call: tuple[Caller, FakeConversation],
) -> None:
    caller, conv = call
    n = len(conv.connections)
    since = time.monotonic()
    speaking = asyncio.create_task(
        conv.speak(text="Let me explain the recovery steps.", seconds=3.0)
    )
    await caller.wait_for_agent_audio(seconds=0.3, timeout=10, since=since)
    sent_at = time.monotonic()
    await conv.go_away(time_left_s=10.0)
    result = await speaking
    assert result.completed and not result.interrupted
    conn = await conv.wait_for_connection(count=n + 1, timeout=15)
    # not before the reply was out, and well before the deadline
    assert result.last_audio_sent_at is not None
    assert conn.opened_at >= result.last_audio_sent_at
    assert conn.opened_at - sent_at < 10.0 - 1.0 + 0.5
    await caller.wait_for_agent_audio(seconds=2.5, timeout=10, since=since)
    await conversation_continues(caller, conv)
    print(f"GoAway: reconnected {conn.opened_at - sent_at:.2f}s after GoAway (10s left)")


async def test_hang_at_setup_is_retried(
    call: tuple[Caller, FakeConversation], gemini: GeminiLiveFake
) -> None:
    caller, conv = call
    gemini.hang_next_setups(1)
    n = len(conv.connections)
    closed_at = time.monotonic()
    await conv.close(code=1011, reason="injected")
    conn = await conv.wait_for_connection(count=n + 2, timeout=30)
    assert conn.setup_complete_at is not None
    recovery = conn.setup_complete_at - closed_at
    assert recovery < SETUP_TIMEOUT_S + 5
    await conversation_continues(caller, conv)
    print(f"recovery 1011 + hang at setup: {recovery:.2f}s")


async def test_hang_mid_turn_triggers_reconnect(call: tuple[Caller, FakeConversation]) -> None:
    caller, conv = call
    n = len(conv.connections)
    # a reply starts (some audio), then the socket goes silent
    pcm = speech_like_pcm(0.4)
    await conv.send(
        {
            "serverContent": {
                "modelTurn": {
                    "parts": [
                        {
                            "inlineData": {
                                "mimeType": "audio/pcm;rate=24000",
                                "data": base64.b64encode(pcm).decode(),
                            }
                        }
                    ]
                }
            }
        }
    )
    hung_at = time.monotonic()
    conv.hang()
    conn = await conv.wait_for_connection(count=n + 1, timeout=30)
    assert conn.setup_complete_at is not None
    recovery = conn.setup_complete_at - hung_at
    assert recovery >= STALL_TIMEOUT_S * 0.9
    await conversation_continues(caller, conv)
    print(f"recovery hang mid-turn: {recovery:.2f}s (stall timeout {STALL_TIMEOUT_S}s)")


async def test_malformed_frame_reconnects(call: tuple[Caller, FakeConversation]) -> None:
    caller, conv = call
    n = len(conv.connections)
    sent_at = time.monotonic()
    await conv.send_malformed(kind="json")
    conn = await conv.wait_for_connection(count=n + 1, timeout=30)
    assert conn.setup_complete_at is not None and conn.resumed_handle is not None
    await conversation_continues(caller, conv)
    print(f"recovery malformed frame: {conn.setup_complete_at - sent_at:.2f}s")


async def test_successive_go_aways_keep_a_long_conversation(
    call: tuple[Caller, FakeConversation],
) -> None:
    """A 30-minute call crosses ~3 connection lifetimes: simulated by 3 GoAways."""
    caller, conv = call
    assert "contextWindowCompression" in conv.setup or "context_window_compression" in conv.setup
    for _ in range(3):
        n = len(conv.connections)
        await conv.go_away(time_left_s=5.0)
        conn = await conv.wait_for_connection(count=n + 1, timeout=15)
        assert conn.resumed_latest  # the newest handle, not just any known one
        await conversation_continues(caller, conv)
    assert greeting_requests(conv) == 1


async def test_trailing_words_before_a_tool_call_are_heard(
    call: tuple[Caller, FakeConversation],
) -> None:
    caller, conv = call

    def audio(seconds: float) -> dict[str, object]:
        data = base64.b64encode(speech_like_pcm(seconds)).decode()
        return {
            "serverContent": {
                "modelTurn": {
                    "parts": [{"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": data}}]
                }
            }
        }

    since = time.monotonic()
    await conv.send(audio(0.8))
    call_id = await conv.send_tool_call("get_current_time", {})
    for _ in range(4):  # "…let me check that" streams after the call, at real time
        await conv.send(audio(0.2))
        await asyncio.sleep(0.2)  # pacing the fake's stream, not synchronisation
    await conv.send({"serverContent": {"generationComplete": True}})
    await conv.wait_for_tool_response(call_id, timeout=15)
    await caller.wait_for_agent_audio(seconds=1.4, timeout=10, since=since)


async def test_connect_then_die_loop_ends_the_call_with_an_explanation(
    call: tuple[Caller, FakeConversation], gemini: GeminiLiveFake
) -> None:
    caller, conv = call
    gemini.die_after_setup(10)
    try:
        await _loop_until_goodbye(caller, conv)
    finally:
        gemini._die_after_setup = 0  # leave the fake clean for later tests


async def _loop_until_goodbye(caller: Caller, conv: FakeConversation) -> None:
    started = time.monotonic()
    await conv.close(code=1011, reason="injected")
    # the caller hears the goodbye clip and reads the notice
    await caller.wait_until(
        lambda: "unavailable" in (caller.agent_attribute("kaiwa.notice") or ""),
        timeout=60,
        what="the unavailable notice",
    )
    await caller.wait_for_agent_audio(seconds=2.0, timeout=30, since=started)
    await caller.wait_until(lambda: caller.agent() is None, timeout=60, what="the agent to leave")
    attempts = len(conv.connections)
    assert attempts <= 1 + 4 + 1, attempts  # bounded: not reconnecting forever
    print(f"gave up after {attempts} connections, {time.monotonic() - started:.1f}s")

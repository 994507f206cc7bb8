"""Every call on the record, through the real stack: livekit-server, the worker, the Gemini
fake and a staff caller.

One call with a spoken turn, a tool call that creates a case and a 1011 recovery; after
the caller leaves, the desk's call record holds both sides' transcript in order, the tool
call with its outcome and case id, the recovery, and usage and cost equal to what the fake
sent in `usageMetadata` times the configured prices. The worker's /metrics has turn
latency observations.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from desk import Desk
from desk.calls import CallDetail
from tests.fakes.gemini_live import FakeConversation, GeminiLiveFake
from tests.support.caller import Caller, load_wav
from tests.support.stack import (
    ROOT,
    STAFF_KEY,
    LiveKitServer,
    TokenServer,
    Worker,
    free_port,
    staff_tokens_env,
    worker_env,
)

from .conftest import fresh_conversation

AGENT = "kaiwa-records"
SPEECH = ROOT / "tests" / "fixtures" / "speech_en.wav"
PRICE_IN_AUDIO, PRICE_IN_TEXT, PRICE_OUT_AUDIO, PRICE_OUT_TEXT = 3.0, 0.5, 12.0, 2.0


@pytest.fixture(scope="module")
def records_db(stack_dir: Path) -> Path:
    return stack_dir / "records.sqlite3"


@pytest.fixture(scope="module")
def metrics_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
async def records_worker(
    livekit: LiveKitServer,
    gemini: GeminiLiveFake,
    stack_dir: Path,
    records_db: Path,
    metrics_port: int,
) -> AsyncIterator[Worker]:
    env = worker_env(
        livekit,
        gemini.env(),
        KAIWA_AGENT_NAME=AGENT,
        KAIWA_DESK_DB=str(records_db),
        KAIWA_METRICS_PORT=str(metrics_port),
        KAIWA_CALL_FLUSH_S="0.2",
        KAIWA_CURRENCY="USD",
        KAIWA_PRICE_INPUT_AUDIO=str(PRICE_IN_AUDIO),
        KAIWA_PRICE_INPUT_TEXT=str(PRICE_IN_TEXT),
        KAIWA_PRICE_OUTPUT_AUDIO=str(PRICE_OUT_AUDIO),
        KAIWA_PRICE_OUTPUT_TEXT=str(PRICE_OUT_TEXT),
        KAIWA_STALL_TIMEOUT_S="3",
        KAIWA_LANGUAGE="en-US",
        KAIWA_STATE_DIR=str(stack_dir / "records-sessions"),
    )
    proc = Worker(env, stack_dir, name="worker-records")
    await proc.start_and_register()
    yield proc
    await proc.stop()


@pytest.fixture(scope="module")
async def records_tokens(livekit: LiveKitServer, stack_dir: Path) -> AsyncIterator[TokenServer]:
    env = worker_env(livekit, {}, KAIWA_AGENT_NAME=AGENT, **staff_tokens_env())
    proc = TokenServer(env, stack_dir)
    await proc.start_ready()
    yield proc
    await proc.stop()


def sent_usage(conv: FakeConversation) -> dict[str, int]:
    """Every usageMetadata the fake sent on this conversation, summed by modality."""
    total = {"in_AUDIO": 0, "in_TEXT": 0, "out_AUDIO": 0, "out_TEXT": 0, "messages": 0}
    for m in conv.messages:
        if m.direction != "out" or m.dropped or not isinstance(m.data, dict):
            continue
        usage = m.data.get("usageMetadata")
        if not usage:
            continue
        total["messages"] += 1
        for key, side in (("promptTokensDetails", "in"), ("responseTokensDetails", "out")):
            for d in usage.get(key) or []:
                total[f"{side}_{d['modality']}"] += int(d.get("tokenCount") or 0)
    return total


async def ended_record(db: Path, room: str, timeout: float = 30.0) -> CallDetail:
    desk = Desk.open(db)
    try:
        deadline = time.monotonic() + timeout
        while True:
            calls = [c for c in desk.calls.list_calls(limit=20) if c.room == room]
            if calls and calls[0].ended_at is not None:
                return desk.calls.get_call(calls[0].id)
            if time.monotonic() > deadline:
                raise TimeoutError(f"no ended call record for {room}: {calls}")
            await asyncio.sleep(0.2)
    finally:
        desk.close()


def in_order(texts: list[tuple[str, str]], wanted: list[tuple[str, str]]) -> bool:
    """`wanted` (speaker, words) appear in `texts` in this order (words as substrings)."""
    it = iter(texts)
    return all(any(who == sp and w in t for who, t in it) for sp, w in wanted)


async def test_a_call_is_on_the_record(
    records_worker: Worker,
    records_tokens: TokenServer,
    gemini: GeminiLiveFake,
    records_db: Path,
    metrics_port: int,
) -> None:
    caller = Caller(f"{records_tokens.url}/token", bearer=STAFF_KEY)
    joined = time.monotonic()
    await caller.join()
    room = caller.room_name
    await caller.wait_for_agent(timeout=20)
    conv = await fresh_conversation(gemini, since=joined, timeout=20)
    conv.auto = False
    await conv.wait_for_greeting_request(timeout=15)
    await conv.speak(text="Hello, data recovery reception.", seconds=0.8)

    # a spoken turn: the caller talks, the fake hears the turn end and answers
    await caller.say_and_wait(load_wav(SPEECH))
    await conv.wait_for_user_turn_end(timeout=15)
    await asyncio.sleep(1.0)  # the worker's gate sees the end 0.8 s after the last voice
    reply_at = time.monotonic()
    await conv.speak(
        text="Sure, I will open a case.",
        seconds=1.0,
        input_transcript="Please open a case for my disk.",
    )
    # heard to the end (a tool call arriving mid-playout would cut the turn short)
    await caller.wait_for_agent_audio(seconds=0.9, timeout=15, since=reply_at)
    await asyncio.sleep(0.3)

    # a tool call that creates a case
    args = {
        "customer_name": "Record Keeper",
        "phone": "090-5555-0101",
        "device_type": "HDD",
        "symptom": "clicking",
    }
    call_id = await conv.send_tool_call("create_case", args)
    response = await conv.wait_for_tool_response(call_id, timeout=15)
    [case_id] = set(re.findall(r"R-\d+", json.dumps(response)))
    await conv.speak(text=f"Your case is {case_id}.", seconds=0.8)

    # a 1011 recovery, then the conversation goes on
    n = len(conv.connections)
    await conv.close(code=1011, reason="injected by test")
    await conv.wait_for_connection(count=n + 1, timeout=30)
    since = time.monotonic()
    await caller.say_and_wait(load_wav(SPEECH))
    await conv.wait_for_voiced_audio(seconds=1.0, timeout=15, since=since)
    heard_from = time.monotonic()
    await conv.speak(text="Still here after the reconnect.", seconds=1.0)
    await caller.wait_for_agent_audio(seconds=0.5, timeout=15, since=heard_from)
    await asyncio.sleep(0.5)
    usage_sent = sent_usage(conv)
    await caller.leave()

    record = await ended_record(records_db, room or "")
    call = record.call
    texts = [(s.speaker, s.text) for s in record.segments]
    print("segments:", [(s.speaker, s.text, s.interrupted) for s in record.segments])
    assert in_order(
        texts,
        [
            ("agent", "Hello, data recovery reception."),
            ("caller", "Please open a case for my disk."),
            ("agent", "Sure, I will open a case."),
            ("agent", f"Your case is {case_id}."),
            ("agent", "Still here after the reconnect."),
        ],
    ), texts
    assert [s.at for s in record.segments] == sorted(s.at for s in record.segments)

    [tool] = [t for t in record.tools if t.call_key == call_id]
    assert (tool.name, tool.outcome, tool.case_id) == ("create_case", "ok", case_id)
    assert json.loads(tool.arguments)["phone"] == "***-****-0101"  # redacted
    assert 0 <= tool.duration_ms < 15_000

    kinds = [r.kind for r in record.recoveries]
    assert "gemini_reconnect" in kinds, kinds

    assert (call.role, call.identity, call.jobs and len(call.jobs)) == ("staff", "clerk", 1)
    assert call.end_reason and call.ended_at is not None
    assert usage_sent["messages"] >= 3
    u = call.usage
    assert (u.input_audio, u.input_text, u.output_audio, u.output_text) == (
        usage_sent["in_AUDIO"],
        usage_sent["in_TEXT"],
        usage_sent["out_AUDIO"],
        usage_sent["out_TEXT"],
    ), (call.usage, usage_sent)
    expected_cost = (
        usage_sent["in_AUDIO"] * PRICE_IN_AUDIO
        + usage_sent["in_TEXT"] * PRICE_IN_TEXT
        + usage_sent["out_AUDIO"] * PRICE_OUT_AUDIO
        + usage_sent["out_TEXT"] * PRICE_OUT_TEXT
    ) / 1e6
    assert call.cost == pytest.approx(expected_cost) and call.currency == "USD"

    assert call.turns >= 1 and call.latency_p50_ms is not None, record.turns
    async with httpx.AsyncClient(timeout=10) as client:
        body = (await client.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
    counts = re.findall(r'^kaiwa_turn_latency_seconds_count\{role="staff"\} (\S+)', body, re.M)
    assert counts and float(counts[0]) >= 1, body[:2000]
    assert re.search(r'^kaiwa_tool_calls_total\{.*outcome="ok".*\} [1-9]', body, re.M)
    print(
        f"call C-{call.id}: {len(record.segments)} segments, {len(record.tools)} tool call(s), "
        f"recoveries {kinds}, tokens in {u.input_total} out {u.output_total}, "
        f"cost {call.cost:.6f} USD, turn latency p50 {call.latency_p50_ms} ms "
        f"p95 {call.latency_p95_ms} ms over {call.turns} turn(s)"
    )


async def test_a_killed_job_and_its_replacement_make_one_record(
    records_worker: Worker,
    records_tokens: TokenServer,
    gemini: GeminiLiveFake,
    records_db: Path,
) -> None:
    caller = Caller(f"{records_tokens.url}/token", bearer=STAFF_KEY)
    joined = time.monotonic()
    await caller.join()
    room = caller.room_name or ""
    try:
        first_agent = await caller.wait_for_agent(timeout=20)
        conv = await fresh_conversation(gemini, since=joined, timeout=20)
        conv.auto = False
        await conv.wait_for_greeting_request(timeout=15)
        await conv.speak(text="Hello before the crash.", seconds=0.8)
        await caller.wait_for_agent_audio(seconds=0.5, timeout=15, since=joined)
        await gemini.wait_until(lambda: conv.last_handle, timeout=10, what="a handle")
        await asyncio.sleep(0.8)  # a flush or more after the greeting
        line = await records_worker.wait_for_line(
            rf'"session starting".*"room": "{room}"', timeout=30
        )
        connections = len(conv.connections)
        os.kill(int(json.loads(line)["pid"]), signal.SIGKILL)

        await caller.wait_until(
            lambda: any(
                p.identity != first_agent.identity and p.kind == first_agent.kind
                for p in caller.room.remote_participants.values()
            ),
            timeout=30,
            what="a replacement agent",
        )
        await conv.wait_for_connection(count=connections + 1, timeout=30)
        req = await conv.wait_for_client_content(
            lambda c: "previous agent process failed" in (c.instructions or ""), timeout=20
        )
        await conv.speak(text="Sorry, we were cut off.", seconds=0.8)
        await caller.wait_for_agent_audio(seconds=0.5, timeout=15, since=req.at)
        await asyncio.sleep(0.5)
    finally:
        await caller.leave()

    record = await ended_record(records_db, room)
    desk = Desk.open(records_db)
    try:
        assert len([c for c in desk.calls.list_calls(limit=50) if c.room == room]) == 1
    finally:
        desk.close()
    assert len(record.call.jobs) == 2, record.call.jobs
    texts = [(s.speaker, s.text) for s in record.segments]
    assert in_order(
        texts, [("agent", "Hello before the crash."), ("agent", "Sorry, we were cut off.")]
    ), texts
    kinds = [r.kind for r in record.recoveries]
    assert "job_redispatch" in kinds, kinds
    print(f"killed job: one record C-{record.call.id}, jobs {record.call.jobs}, {texts}")

"""The fake's strict behaviours ("Strict like the real service", tests/fakes/README.md).

Driven by the real google-genai SDK and the real livekit-plugins-google RealtimeSession.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from google import genai
from google.genai import errors, types
from livekit.agents import llm
from livekit.plugins.google.realtime import RealtimeModel

from tests.fakes.gemini_live import (
    INPUT_RATE,
    FakeConversation,
    GeminiLiveFake,
    silence_pcm,
    speech_like_pcm,
)

MODEL = "gemini-2.5-flash-native-audio-preview-12-2025"
MODEL_38 = "gemini-3.8-live"
PCM = "audio/pcm;rate=16000"


@pytest.fixture
async def fake(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[GeminiLiveFake]:
    async with GeminiLiveFake(auto=False) as f:
        for key, value in f.env().items():
            monkeypatch.setenv(key, value)
        yield f


def _weather(behavior: types.Behavior | None = None) -> types.FunctionDeclaration:
    return types.FunctionDeclaration(
        name="get_weather",
        description="Weather for a city.",
        parameters=types.Schema(
            type=types.Type.OBJECT, properties={"city": types.Schema(type=types.Type.STRING)}
        ),
        behavior=behavior,
    )


def _config(**overrides: Any) -> types.LiveConnectConfig:
    base: dict[str, Any] = {
        "response_modalities": [types.Modality.AUDIO],
        "tools": [types.Tool(function_declarations=[_weather()])],
        "session_resumption": types.SessionResumptionConfig(),
        "input_audio_transcription": types.AudioTranscriptionConfig(),
        "output_audio_transcription": types.AudioTranscriptionConfig(),
    }
    base.update(overrides)
    return types.LiveConnectConfig(**base)


async def _recv_until(
    session: Any, stop: Callable[[types.LiveServerMessage], bool], timeout: float = 5.0
) -> list[types.LiveServerMessage]:
    out: list[types.LiveServerMessage] = []
    async with asyncio.timeout(timeout):
        while True:
            async for msg in session.receive():
                out.append(msg)
                if stop(msg):
                    return out


def _update(m: types.LiveServerMessage) -> bool:
    return m.session_resumption_update is not None


def _turn_complete(m: types.LiveServerMessage) -> bool:
    return bool(m.server_content and m.server_content.turn_complete)


def _input_text(m: types.LiveServerMessage) -> str | None:
    sc = m.server_content
    return sc.input_transcription.text if sc and sc.input_transcription else None


async def _answer(session: Any, call_id: str, output: str = "sunny") -> None:
    await session.send_tool_response(
        function_responses=[
            types.FunctionResponse(id=call_id, name="get_weather", response={"output": output})
        ]
    )


async def _say(session: Any, seconds: float = 0.6) -> None:
    """One user turn for the energy VAD: speech, then enough silence to end it."""
    for pcm in (speech_like_pcm(seconds, INPUT_RATE), silence_pcm(0.6)):
        await session.send_realtime_input(audio=types.Blob(data=pcm, mime_type=PCM))


# --------------------------------------------------------------------------- 1. tool ids


async def test_repeated_and_unknown_tool_ids_close_1007(fake: GeminiLiveFake) -> None:
    client = genai.Client(api_key="k")
    async with client.aio.live.connect(model=MODEL, config=_config()) as session:
        conv = await fake.next_conversation(timeout=5)
        call_id = await conv.send_tool_call("get_weather", {"city": "Oslo"})
        await _answer(session, call_id)
        assert await conv.wait_for_tool_response(call_id, timeout=5) == {"output": "sunny"}
        conv.assert_no_protocol_errors()

        await _answer(session, call_id, "again")  # the same id twice
        with pytest.raises(errors.APIError) as exc:
            await _recv_until(session, lambda m: False)
        assert exc.value.code == 1007
    closed = await conv.wait_for_close(timeout=5)
    assert closed.close_code == 1007 and closed.closed_by == "server"
    assert closed.close_reason == "Request contains an invalid argument."
    assert conv.tool_response_counts == {call_id: 2}
    assert conv.tool_calls[call_id].response_count == 2
    assert [(e.kind, e.closed) for e in conv.protocol_errors] == [("duplicate_tool_response", True)]
    assert conv.tool_responses[-1].rejected == "duplicate_tool_response"
    with pytest.raises(AssertionError, match="duplicate_tool_response"):
        fake.assert_no_protocol_errors()
    fake.assert_no_protocol_errors(allow={"duplicate_tool_response"})

    async with client.aio.live.connect(model=MODEL, config=_config()) as session:
        conv2 = await fake.next_conversation(timeout=5)
        await _answer(session, "function-call-123")  # never issued
        with pytest.raises(errors.APIError) as exc:
            await _recv_until(session, lambda m: False)
        assert exc.value.code == 1007
    assert [e.kind for e in conv2.protocol_errors] == ["unknown_tool_call_id"]
    assert [e.kind for e in fake.protocol_errors] == [
        "duplicate_tool_response",
        "unknown_tool_call_id",
    ]
    await client.aio.aclose()


async def test_lenient_tool_ids_and_cancelled_answers_only_record(
    fake: GeminiLiveFake,
) -> None:
    client = genai.Client(api_key="k")
    async with client.aio.live.connect(model=MODEL, config=_config()) as session:
        conv = await fake.next_conversation(timeout=5)
        # an answer after toolCallCancellation: recorded, the socket stays open
        call_id = await conv.send_tool_call("get_weather", {"city": "Rome"})
        await conv.cancel_tool_calls([call_id])
        await _answer(session, call_id)
        await fake.wait_until(lambda: conv.protocol_errors or None, 5, "the error")
        assert [(e.kind, e.closed) for e in conv.protocol_errors] == [
            ("cancelled_tool_call_answered", False)
        ]
        # strict_tool_ids=False: even an unknown id only gets recorded
        fake.strict_tool_ids = False
        await _answer(session, "function-call-999")
        await fake.wait_until(lambda: len(conv.protocol_errors) == 2 or None, 5, "the second error")
        assert conv.protocol_errors[1].kind == "unknown_tool_call_id"
        assert not conv.protocol_errors[1].closed
        await conv.speak("Still here.", seconds=0.2, realtime=False)
        await _recv_until(session, _turn_complete)
        assert conv.live_connection is not None
    await client.aio.aclose()


# --------------------------------------------------------------------------- 2. resumable


async def test_no_resumable_handle_while_a_call_is_pending(fake: GeminiLiveFake) -> None:
    client = genai.Client(api_key="k")
    async with client.aio.live.connect(model=MODEL, config=_config()) as session:
        conv = await fake.next_conversation(timeout=5)
        first = await _recv_until(session, _update)
        upd = first[-1].session_resumption_update
        assert upd is not None and upd.resumable and upd.new_handle == conv.handles[0]

        call_id = await conv.send_tool_call("get_weather", {"city": "Paris"})
        msgs = await _recv_until(session, _update)
        assert msgs[0].tool_call is not None
        upd = msgs[-1].session_resumption_update
        assert upd is not None and not upd.resumable and upd.new_handle is None
        assert conv.pending_tool_calls == [call_id]

        # a turn ending while the call runs: still not resumable
        await conv.speak("Let me check.", seconds=0.2, realtime=False)
        msgs = await _recv_until(session, _update)
        upd = msgs[-1].session_resumption_update
        assert upd is not None and not upd.resumable and upd.new_handle is None
        assert len(conv.handles) == 1

        # answering the last pending call brings a fresh handle at once
        await _answer(session, call_id)
        msgs = await _recv_until(session, _update)
        upd = msgs[-1].session_resumption_update
        assert upd is not None and upd.resumable and upd.new_handle == conv.handles[-1]
        assert len(conv.handles) == 2 and not conv.pending_tool_calls
        # ...and after the next turnComplete too
        await conv.speak("It is sunny.", seconds=0.2, realtime=False)
        msgs = await _recv_until(session, _update)
        upd = msgs[-1].session_resumption_update
        assert upd is not None and upd.resumable and len(conv.handles) == 3
        fake.assert_no_protocol_errors()
    await client.aio.aclose()


# --------------------------------------------------------------------------- 3. resume


async def test_resume_restores_the_state_at_the_handle(fake: GeminiLiveFake) -> None:
    client = genai.Client(api_key="k")
    async with client.aio.live.connect(model=MODEL, config=_config()) as session:
        conv = await fake.next_conversation(timeout=5)
        handle = conv.handles[-1]  # issued after setupComplete
        await _say(session)
        await conv.wait_for_user_turn_end(timeout=5)
        await session.send_client_content(
            turns=types.Content(role="user", parts=[types.Part(text="typed, then lost")]),
            turn_complete=False,
        )
        await conv.wait_for_user_text(timeout=5)
        call_id = await conv.send_tool_call("get_weather", {"city": "Lima"})
        await conv.close(1011)
    await conv.wait_for_close(timeout=5)
    assert conv.handles == [handle]  # nothing resumable since (the call is pending)

    config = _config(session_resumption=types.SessionResumptionConfig(handle=handle))
    async with client.aio.live.connect(model=MODEL, config=config) as session:
        conn2 = await conv.wait_for_connection(2, timeout=5)
        assert conn2.resumed_handle == handle and conn2.resumed_latest
        (lost,) = conv.lost_after_resume
        assert lost.handle == handle and lost.resumed_on == conn2.index
        assert lost.voiced_seconds == pytest.approx(0.6, abs=0.05)
        assert lost.user_turns == 1 and lost.texts == ["typed, then lost"]
        assert lost.tool_call_ids == [call_id]
        assert all(c.lost for c in conv.audio) and conv.user_turns[0].lost
        assert conv.user_texts[0].lost and conv.client_contents[0].lost
        assert conv.tool_calls[call_id].forgotten_at is not None
        assert not conv.pending_tool_calls  # so the resumed session is resumable again
        assert len(conv.handles) == 2

        # the auto script does not answer a turn the resume lost
        conv.auto = True
        await conv.auto_speak("Answering a lost turn.", 0.2, turn=conv.user_turns[0])
        assert conv.speeches == []

        # the forgotten call's answer is an unknown id
        await _answer(session, call_id)
        with pytest.raises(errors.APIError) as exc:
            await _recv_until(session, lambda m: False)
        assert exc.value.code == 1007
    assert [e.kind for e in conv.protocol_errors] == ["unknown_tool_call_id"]
    assert "after the handle" in conv.protocol_errors[0].detail
    await client.aio.aclose()


async def test_resume_with_an_older_handle_is_accepted_and_flagged(fake: GeminiLiveFake) -> None:
    client = genai.Client(api_key="k")
    async with client.aio.live.connect(model=MODEL, config=_config()) as session:
        conv = await fake.next_conversation(timeout=5)
        await conv.speak("One.", seconds=0.2, realtime=False)
        await _recv_until(session, _turn_complete)
        assert len(conv.handles) == 2
    await conv.wait_for_close(timeout=5)
    stale = conv.handles[0]
    config = _config(session_resumption=types.SessionResumptionConfig(handle=stale))
    async with client.aio.live.connect(model=MODEL, config=config):
        conn2 = await conv.wait_for_connection(2, timeout=5)
        assert conn2.resumed_handle == stale and conn2.resumed_latest is False
    config = _config(session_resumption=types.SessionResumptionConfig(handle="nope"))
    async with client.aio.live.connect(model=MODEL, config=config):
        await fake.next_conversation(timeout=5)  # unknown: a new conversation, recorded
        assert [h for _, h, _ in fake.unknown_handles] == ["nope"]
    await client.aio.aclose()


# --------------------------------------------------------------------------- 4. goAway


async def test_go_away_closes_when_time_runs_out(fake: GeminiLiveFake) -> None:
    client = genai.Client(api_key="k")
    async with client.aio.live.connect(model=MODEL, config=_config()) as session:
        conv = await fake.next_conversation(timeout=5)
        conn = await conv.go_away(0.3)
        msgs = await _recv_until(session, lambda m: m.go_away is not None)
        assert msgs[-1].go_away is not None and msgs[-1].go_away.time_left == "0.300s"
        with pytest.raises(errors.APIError) as exc:
            await _recv_until(session, lambda m: False)
        assert exc.value.code == 1011
    await conn.wait_closed(timeout=5)
    assert conn.closed_by == "server" and conn.close_code == 1011
    assert conn.close_reason == "Deadline expired before operation could complete."
    assert conn.go_away_deadline is not None
    assert conn.closed_at is not None and conn.closed_at >= conn.go_away_deadline
    await client.aio.aclose()


async def test_plugin_moves_on_go_away_before_the_deadline(fake: GeminiLiveFake) -> None:
    sess = RealtimeModel(api_key="fake", instructions="be brief").session()
    try:
        conv = await fake.next_conversation(timeout=5)
        conn = await conv.go_away(2.0)
        conn2 = await conv.wait_for_connection(2, timeout=5)
        await conn.wait_closed(timeout=5)
        assert conn.closed_by == "client" and conn.close_code == 1000
        assert conn2.resumed_latest
        await asyncio.sleep(2.2)  # the deadline passes: nothing happens to the new socket
        assert conn2.is_live
    finally:
        await sess.aclose()


# --------------------------------------------------------------------------- 5. transcripts


async def test_auto_transcripts_are_late_pieces_and_configurable(fake: GeminiLiveFake) -> None:
    fake.auto = True
    fake.late_transcript_delay_s = 0.1
    fake.script.reply_seconds = 0.4
    fake.script.user_transcripts.append("はい")
    client = genai.Client(api_key="k")
    async with client.aio.live.connect(model=MODEL, config=_config()) as session:
        conv = await fake.next_conversation(timeout=5)
        conv.next_user_transcript = "yes go ahead"  # wins over the queue, used once

        for expected_pieces in (["yes", " go", " ahead"], ["はい"], ["(user", " speech)"]):
            await _say(session)
            turn = await conv.wait_for_user_turn_end(timeout=5)
            msgs = await _recv_until(session, _turn_complete)
            msgs += await _recv_until(session, lambda m: _input_text(m) is not None)
            texts = [(i, _input_text(m)) for i, m in enumerate(msgs) if _input_text(m)]
            done = next(i for i, m in enumerate(msgs) if _turn_complete(m))
            first_audio = next(i for i, m in enumerate(msgs) if m.data)
            assert [t for _, t in texts] == expected_pieces
            assert texts[0][0] > first_audio and texts[-1][0] > done
            assert turn.transcript == "".join(expected_pieces)
        assert [s.input_transcript_sent[-1][0] > (s.turn_complete_at or 0) for s in conv.speeches]
    await client.aio.aclose()


async def test_speak_keeps_early_transcript_and_offers_late(fake: GeminiLiveFake) -> None:
    client = genai.Client(api_key="k")
    async with client.aio.live.connect(model=MODEL, config=_config()) as session:
        conv = await fake.next_conversation(timeout=5)
        task = asyncio.create_task(
            conv.speak("Ok.", seconds=0.3, realtime=False, input_transcript="hello there")
        )
        msgs = await _recv_until(session, _turn_complete)
        await task
        texts = [(i, t) for i, m in enumerate(msgs) if (t := _input_text(m))]
        assert texts == [(1, "hello there")]  # right after the setup's resumption update

        fake.late_transcript_delay_s = 0.05
        task = asyncio.create_task(
            conv.speak(
                "Ok.",
                seconds=0.3,
                realtime=False,
                input_transcript="hello there",
                transcript_timing="late",
                transcript_pieces=2,
            )
        )
        msgs = await _recv_until(session, _turn_complete)
        msgs += await _recv_until(session, lambda m: _input_text(m) is not None)
        result = await task
        heard = [_input_text(m) for m in msgs]
        assert [t for t in heard if t] == ["hello", " there"]
        assert [t for _, t in result.input_transcript_sent] == ["hello", " there"]
    await client.aio.aclose()


# --------------------------------------------------------------------------- 6. hangs


async def test_session_hang_after_a_user_turn_and_slow_pongs(fake: GeminiLiveFake) -> None:
    fake.auto = True
    fake.script.reply_seconds = 0.3
    client = genai.Client(api_key="k")
    async with client.aio.live.connect(model=MODEL, config=_config()) as session:
        conv = await fake.next_conversation(timeout=5)
        await _recv_until(session, _update)
        conv.ignore_next_user_turns(1)
        await _say(session)
        turn = await conv.wait_for_user_turn_end(timeout=5)
        with pytest.raises(TimeoutError):
            await _recv_until(session, lambda m: True, timeout=1.5)
        assert turn.ignored and conv.ignored_user_turns == [turn] and not conv.speeches
        assert conv.live_connection is not None

        conn = conv.connections[0]
        ws = session._ws
        latency = await asyncio.wait_for(await ws.ping(), 5)
        assert latency < 0.3
        conn.pong_delay_s = 0.5
        t0 = time.monotonic()
        await asyncio.wait_for(await ws.ping(), 5)
        assert time.monotonic() - t0 >= 0.45 and conn.pings_received == 2

        # only that turn was swallowed: the next one is answered
        await _say(session)
        await conv.wait_for_user_turn_end(timeout=5)
        await _recv_until(session, _turn_complete)
        assert len(conv.speeches) == 1

        fake.silent_after_user_turn(1)  # fake-wide form
        await _say(session)
        await conv.wait_for_user_turn_end(timeout=5)
        await asyncio.sleep(1.0)
        assert len(conv.ignored_user_turns) == 2 and len(conv.speeches) == 1
    await client.aio.aclose()


# --------------------------------------------------------------------------- 7. 3.8


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"enable_affective_dialog": True}, "enable_affective_dialog"),
        ({"thinking_config": types.ThinkingConfig(thinking_budget=128)}, "thinking_config"),
        ({"proactivity": types.ProactivityConfig(proactive_audio=False)}, "proactive_audio"),
    ],
)
async def test_38_refuses_setup_fields(
    fake: GeminiLiveFake, overrides: dict[str, Any], reason: str
) -> None:
    client = genai.Client(api_key="k", http_options=types.HttpOptions(api_version="v1alpha"))
    with pytest.raises(errors.APIError) as exc:
        async with client.aio.live.connect(model=MODEL_38, config=_config(**overrides)):
            pass
    assert exc.value.code == 1007
    (err,) = fake.protocol_errors
    assert err.kind == "unsupported_setup" and reason in err.detail
    assert not fake.conversations
    # the same setup is fine on 2.5
    async with client.aio.live.connect(model=MODEL, config=_config(**overrides)):
        conv = await fake.next_conversation(timeout=5)
        assert conv.model_family == "2.5"
    await client.aio.aclose()


async def test_38_tool_behaviour_defaults(fake: GeminiLiveFake) -> None:
    client = genai.Client(api_key="k")
    tools = [
        types.Tool(
            function_declarations=[
                _weather(),
                types.FunctionDeclaration(
                    name="hang_up", description="End.", behavior=types.Behavior.BLOCKING
                ),
            ]
        )
    ]
    for model, family, default in ((MODEL_38, "3.8", "NON_BLOCKING"), (MODEL, "2.5", "BLOCKING")):
        config = _config(tools=tools, proactivity=types.ProactivityConfig(proactive_audio=True))
        async with client.aio.live.connect(model=model, config=config):
            conv = await fake.next_conversation(timeout=5)
            assert conv.model_family == family
            assert conv.setup_info.tool_behaviors == {
                "get_weather": default,
                "hang_up": "BLOCKING",
            }
            assert conv.tool_behaviors == conv.setup_info.tool_behaviors
    fake.assert_no_protocol_errors()
    await client.aio.aclose()


async def test_plugin_38_declares_non_blocking(fake: GeminiLiveFake) -> None:
    @llm.function_tool
    async def get_weather(city: str) -> str:
        """Get the weather for a city."""
        return "sunny"

    sess = RealtimeModel(api_key="fake", model=MODEL_38, instructions="be brief").session()
    try:
        await sess.update_tools([get_weather])
        conv = await fake.next_conversation(timeout=5)
        await fake.wait_until(lambda: conv.tool_names or None, 5, "a setup with tools")
        assert conv.model_family == "3.8"
        assert conv.tool_behaviors == {"get_weather": "NON_BLOCKING"}
        fake.assert_no_protocol_errors()
    finally:
        await sess.aclose()


# --------------------------------------------------------------------------- plugin + tools


async def _plugin_tool_call(
    fake: GeminiLiveFake,
) -> tuple[Any, FakeConversation, str, asyncio.Queue[llm.FunctionCall]]:
    @llm.function_tool
    async def get_weather(city: str) -> str:
        """Get the weather for a city."""
        return "sunny"

    sess = RealtimeModel(api_key="fake", instructions="be brief").session()
    await sess.update_tools([get_weather])
    calls: asyncio.Queue[llm.FunctionCall] = asyncio.Queue()

    def on_generation(ev: llm.GenerationCreatedEvent) -> None:
        async def read() -> None:
            async for fc in ev.function_stream:
                calls.put_nowait(fc)

        asyncio.get_running_loop().create_task(read())

    sess.on("generation_created", on_generation)
    conv = await fake.next_conversation(timeout=5)
    await fake.wait_until(
        lambda: conv.live_connection if "get_weather" in conv.tool_names else None, 5, "tools"
    )
    call_id = await conv.send_tool_call("get_weather", {"city": "Oslo"})
    return sess, conv, call_id, calls


def _with_output(sess: Any, fc: llm.FunctionCall) -> llm.ChatContext:
    ctx = sess.chat_ctx.copy()
    ctx.items.append(fc)
    ctx.items.append(
        llm.FunctionCallOutput(call_id=fc.call_id, name=fc.name, output="sunny", is_error=False)
    )
    return ctx


async def test_plugin_answers_a_call_once(fake: GeminiLiveFake) -> None:
    sess, conv, call_id, calls = await _plugin_tool_call(fake)
    try:
        fc = await asyncio.wait_for(calls.get(), 5)
        assert fc.call_id == call_id
        await sess.update_chat_ctx(_with_output(sess, fc))
        assert await conv.wait_for_tool_response(call_id, timeout=5) == {"output": "sunny"}
        await fake.wait_until(lambda: len(conv.handles) == 2 or None, 5, "a fresh handle")
        assert conv.tool_response_counts == {call_id: 1}
        fake.assert_no_protocol_errors()
    finally:
        await sess.aclose()


async def test_plugin_answer_after_a_1011_is_an_unknown_id(fake: GeminiLiveFake) -> None:
    """The call was made after the last resumable handle; the socket dies before the answer.
    The plugin resumes with that older handle, then sends the answer: the resumed session
    never made the call, so the real service refuses it (1007, fatal for the plugin)."""
    sess, conv, call_id, calls = await _plugin_tool_call(fake)
    try:
        fc = await asyncio.wait_for(calls.get(), 5)
        handle = conv.handles[-1]
        await conv.close(1011)
        conn2 = await conv.wait_for_connection(2, timeout=5)
        assert conn2.resumed_handle == handle
        assert conv.lost_after_resume[-1].tool_call_ids == [call_id]
        await sess.update_chat_ctx(_with_output(sess, fc))
        await fake.wait_until(lambda: conv.protocol_errors or None, 5, "the protocol error")
        assert conv.protocol_errors[0].kind == "unknown_tool_call_id"
        closed = await conn2.wait_closed(timeout=5)
        assert closed.close_code == 1007
    finally:
        await sess.aclose()


async def test_plugin_late_transcript_piece_opens_a_new_generation(fake: GeminiLiveFake) -> None:
    """What the plugin makes of a piece that comes after turnComplete (README: plugin notes):
    a new generation (with input_speech_started, which cuts playout), and the piece is glued
    to the next turn's transcript."""
    fake.late_transcript_delay_s = 0.05
    sess = RealtimeModel(api_key="fake", instructions="be brief").session()
    events: list[tuple[str, str | bool]] = []
    done = asyncio.Event()

    def add(event: tuple[str, str | bool]) -> None:
        events.append(event)
        if events.count(("generation", False)) == 2 and event[0] == "partial":
            done.set()

    sess.on("generation_created", lambda ev: add(("generation", ev.user_initiated)))
    sess.on(
        "input_audio_transcription_completed",
        lambda ev: add(("final" if ev.is_final else "partial", ev.transcript)),
    )
    try:
        conv = await fake.next_conversation(timeout=5)
        await conv.wait_for_connection(1, timeout=5)
        await conv.speak(
            "Ok.",
            seconds=0.2,
            realtime=False,
            input_transcript="yes go ahead",
            transcript_timing="late",
        )
        await asyncio.wait_for(done.wait(), 5)
        finals = [t for k, t in events if k == "final"]
        assert finals == ["yes go"]  # "ahead" missed the turn it belongs to
        assert events[-1] == ("partial", "ahead")  # ...and opened a generation of its own
    finally:
        await sess.aclose()

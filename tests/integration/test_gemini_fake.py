"""Tests of the Gemini Live fake, driven by the real google-genai SDK and LiveKit plugin.

No LiveKit server is needed: the plugin's RealtimeSession runs on its own. Every wait is
bounded; the fake paces audio in real time only where a test needs it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any

import pytest
import websockets
from google import genai
from google.genai import errors, types
from livekit import rtc
from livekit.agents import Agent, AgentSession, llm
from livekit.plugins.google.realtime import RealtimeModel
from livekit.plugins.google.realtime.realtime_api import RealtimeSession

from tests.fakes.gemini_live import (
    INPUT_RATE,
    OUTPUT_RATE,
    FakeConversation,
    GeminiLiveFake,
    proto_duration,
    rms,
    silence_pcm,
    speech_like_pcm,
)

MODEL = "gemini-2.5-flash-native-audio-preview-12-2025"
WS_PATH = "/ws/google.ai.generativelanguage.v1.GenerativeService.BidiGenerateContent"


@pytest.fixture
async def fake(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[GeminiLiveFake]:
    async with GeminiLiveFake(auto=False) as f:
        # google-genai reads both when a Client is created (the plugin makes one per session)
        for key, value in f.env().items():
            monkeypatch.setenv(key, value)
        yield f


def _config(**overrides: Any) -> types.LiveConnectConfig:
    weather = types.FunctionDeclaration(
        name="get_weather",
        description="Weather for a city.",
        parameters=types.Schema(
            type=types.Type.OBJECT, properties={"city": types.Schema(type=types.Type.STRING)}
        ),
    )
    base: dict[str, Any] = {
        "response_modalities": [types.Modality.AUDIO],
        "speech_config": types.SpeechConfig(
            voice_config=types.VoiceConfig(
                prebuilt_voice_config=types.PrebuiltVoiceConfig(voice_name="Puck")
            ),
            language_code="en-US",
        ),
        "system_instruction": "be nice",
        "tools": [types.Tool(function_declarations=[weather])],
        "session_resumption": types.SessionResumptionConfig(),
        "input_audio_transcription": types.AudioTranscriptionConfig(),
        "output_audio_transcription": types.AudioTranscriptionConfig(),
    }
    base.update(overrides)
    return types.LiveConnectConfig(**base)


async def _recv_until(
    session: Any,
    stop: Callable[[types.LiveServerMessage], bool],
    timeout: float = 5.0,
) -> list[types.LiveServerMessage]:
    """Collect SDK messages until `stop` matches (receive() itself stops at turnComplete)."""
    out: list[types.LiveServerMessage] = []
    async with asyncio.timeout(timeout):
        while True:
            async for msg in session.receive():
                out.append(msg)
                if stop(msg):
                    return out


def _turn_complete(m: types.LiveServerMessage) -> bool:
    return bool(m.server_content and m.server_content.turn_complete)


def _input_text(m: types.LiveServerMessage) -> str | None:
    sc = m.server_content
    return sc.input_transcription.text if sc and sc.input_transcription else None


def _pcm16(seconds: float) -> bytes:
    return speech_like_pcm(seconds, INPUT_RATE)


# --------------------------------------------------------------------------- pure helpers


def test_speech_like_pcm_is_voiced_everywhere() -> None:
    pcm = speech_like_pcm(2.0, OUTPUT_RATE)
    assert len(pcm) == 2 * OUTPUT_RATE * 2
    assert pcm == speech_like_pcm(2.0, OUTPUT_RATE)  # deterministic
    chunk = OUTPUT_RATE // 20 * 2  # 50 ms
    levels = [rms(pcm[i : i + chunk]) for i in range(0, len(pcm), chunk)]
    assert min(levels) > 2000 and max(levels) < 20000
    assert rms(silence_pcm(0.5)) == 0.0


def test_proto_duration() -> None:
    assert proto_duration(10) == "10s"
    assert proto_duration(1.5) == "1.500s"
    assert proto_duration(0.000001) == "0.000001s"


# --------------------------------------------------------------------------- google-genai SDK


async def test_sdk_setup_audio_speak_and_resumption(fake: GeminiLiveFake) -> None:
    client = genai.Client(api_key="k")
    async with client.aio.live.connect(model=MODEL, config=_config()) as session:
        conv = await fake.next_conversation(timeout=5)
        conn = conv.connections[0]
        assert conn.api_version == "v1" and conn.api_key == "k"
        assert conv.model == f"models/{MODEL}"
        assert conv.voice == "Puck" and conv.language == "en-US"
        assert conv.system_instruction == "be nice"
        assert conv.tool_names == ["get_weather"]

        # client audio arrives decoded (the SDK sends URL-safe base64)
        pcm = _pcm16(1.0)
        for i in range(0, len(pcm), 3200):
            await session.send_realtime_input(
                audio=types.Blob(data=pcm[i : i + 3200], mime_type="audio/pcm;rate=16000")
            )
        await conv.wait_for_voiced_audio(1.0, timeout=5)
        assert conv.audio_pcm == pcm
        assert conv.first_voiced_at is not None

        speak = asyncio.create_task(
            conv.speak("Hi there, friend.", seconds=0.4, realtime=False, input_transcript="hey")
        )
        msgs = await _recv_until(session, _turn_complete)
        result = await speak
        assert result.completed and not result.interrupted
        assert result.first_audio_sent_at is not None
        audio = b"".join(
            m.data or b"" for m in msgs if m.server_content and m.server_content.model_turn
        )
        assert len(audio) == round(0.4 * OUTPUT_RATE) * 2
        sc = [m.server_content for m in msgs if m.server_content]
        assert "".join(s.output_transcription.text or "" for s in sc if s.output_transcription) == (
            "Hi there, friend."
        )
        assert [s.input_transcription.text for s in sc if s.input_transcription] == ["hey"]
        assert any(s.generation_complete for s in sc)
        usage = [m.usage_metadata for m in msgs if m.usage_metadata]
        assert usage and (usage[-1].response_token_count or 0) > 0
        handles = [
            m.session_resumption_update.new_handle
            for m in msgs
            if m.session_resumption_update and m.session_resumption_update.resumable
        ]
        assert handles and handles[0] == conv.handles[0]

    # reconnect with the handle: same conversation, second connection
    await conv.wait_for_close(timeout=5)
    handle = conv.handles[-1]
    config = _config(session_resumption=types.SessionResumptionConfig(handle=handle))
    async with client.aio.live.connect(model=MODEL, config=config):
        conn2 = await conv.wait_for_connection(2, timeout=5)
        assert conn2.resumed_handle == handle and conn2.resumed_latest
        assert conv.setups[1]["sessionResumption"] == {"handle": handle}
        assert len(fake.conversations) == 1
    await client.aio.aclose()


async def test_sdk_tool_call_go_away_and_barge_in(fake: GeminiLiveFake) -> None:
    client = genai.Client(api_key="k")
    async with client.aio.live.connect(model=MODEL, config=_config()) as session:
        conv = await fake.next_conversation(timeout=5)

        call = asyncio.create_task(conv.call_tool("get_weather", {"city": "Paris"}, timeout=5))
        msgs = await _recv_until(session, lambda m: m.tool_call is not None)
        assert msgs[-1].tool_call is not None
        fc = (msgs[-1].tool_call.function_calls or [])[0]
        assert fc.name == "get_weather" and fc.args == {"city": "Paris"}
        assert fc.id and fc.id.startswith("function-call-")
        await session.send_tool_response(
            function_responses=[
                types.FunctionResponse(id=fc.id, name=fc.name, response={"output": "sunny"})
            ]
        )
        assert await call == {"output": "sunny"}
        rec = conv.tool_calls[fc.id]
        assert rec.response_at is not None and rec.response_at >= rec.sent_at

        await conv.go_away(10.0)
        msgs = await _recv_until(session, lambda m: m.go_away is not None)
        assert msgs[-1].go_away is not None and msgs[-1].go_away.time_left == "10s"

        # barge-in: user speech while the fake talks stops it with interrupted + turnComplete
        speak = asyncio.create_task(conv.speak("A long story about nothing.", seconds=5.0))
        first = await _recv_until(
            session, lambda m: bool(m.server_content and m.server_content.model_turn)
        )
        assert first
        await session.send_realtime_input(
            audio=types.Blob(data=_pcm16(0.3), mime_type="audio/pcm;rate=16000")
        )
        msgs = await _recv_until(session, _turn_complete)
        result = await asyncio.wait_for(speak, 5)
        assert result.interrupted and result.interrupted_by == "barge_in"
        assert result.interrupted_at is not None and result.chunks_sent < result.chunks_planned
        flags = [m.server_content.interrupted for m in msgs if m.server_content]
        assert flags.count(True) == 1
    await client.aio.aclose()


async def test_sdk_text_greeting_and_auto_script(fake: GeminiLiveFake) -> None:
    fake.auto = True
    fake.script.greeting_seconds = fake.script.reply_seconds = 0.3
    client = genai.Client(api_key="k")
    async with client.aio.live.connect(model=MODEL, config=_config()) as session:
        conv = await fake.next_conversation(timeout=5)

        # the plugin's generate_reply(instructions=...) shape (protocol doc §3.4)
        await session.send_client_content(
            turns=[
                types.Content(role="model", parts=[types.Part(text="Greet the user.")]),
                types.Content(role="user", parts=[types.Part(text=".")]),
            ],
            turn_complete=True,
        )
        req = await conv.wait_for_greeting_request(timeout=5)
        assert req.instructions == "Greet the user."
        msgs = await _recv_until(session, _turn_complete)
        said = "".join(
            m.server_content.output_transcription.text or ""
            for m in msgs
            if m.server_content and m.server_content.output_transcription
        )
        assert said == fake.script.greeting_text

        await session.send_realtime_input(text="hello by text")
        assert (await conv.wait_for_text(timeout=5)).text == "hello by text"
        assert await conv.wait_for_user_text(timeout=5) == "hello by text"
        msgs = await _recv_until(session, _turn_complete)
        said = "".join(
            m.server_content.output_transcription.text or ""
            for m in msgs
            if m.server_content and m.server_content.output_transcription
        )
        assert said == "You said: hello by text"

        # voice turn: speech then silence -> energy VAD -> transcript + reply
        for pcm in (_pcm16(0.6), silence_pcm(0.6)):
            await session.send_realtime_input(
                audio=types.Blob(data=pcm, mime_type="audio/pcm;rate=16000")
            )
        turn = await conv.wait_for_user_turn_end(timeout=5)
        assert 0.55 <= turn.voiced_seconds <= 0.65
        msgs = await _recv_until(session, _turn_complete)
        # the transcription is late and in pieces: after the reply's first audio, and the
        # last piece only after turnComplete
        first_audio = next(i for i, m in enumerate(msgs) if m.data)
        heard = [
            (i, m.server_content.input_transcription.text)
            for i, m in enumerate(msgs)
            if m.server_content and m.server_content.input_transcription
        ]
        assert [t for _, t in heard] == ["(user"] and heard[0][0] > first_audio
        msgs = await _recv_until(session, lambda m: _input_text(m) is not None)
        assert _input_text(msgs[-1]) == " speech)"
    await client.aio.aclose()


async def test_sdk_manual_activity_video_and_explicit_interrupt(fake: GeminiLiveFake) -> None:
    fake.auto = True
    fake.script.reply_seconds = 0.3
    client = genai.Client(api_key="k")
    manual = types.RealtimeInputConfig(
        automatic_activity_detection=types.AutomaticActivityDetection(disabled=True)
    )
    async with client.aio.live.connect(
        model=MODEL, config=_config(realtime_input_config=manual)
    ) as session:
        conv = await fake.next_conversation(timeout=5)
        assert conv.manual_activity
        await session.send_realtime_input(
            video=types.Blob(data=b"\xff\xd8fakejpeg", mime_type="image/jpeg")
        )
        assert await conv.wait_for_video_frames(1, timeout=5) == 1
        assert conv.video_mime_types == ["image/jpeg"]

        # manual activity: activityEnd (not the VAD) triggers the auto reply
        await session.send_realtime_input(activity_start=types.ActivityStart())
        await session.send_realtime_input(
            audio=types.Blob(data=_pcm16(0.5) + silence_pcm(0.6), mime_type="audio/pcm;rate=16000")
        )
        await session.send_realtime_input(activity_end=types.ActivityEnd())
        await conv.wait_for_activity("activityEnd", timeout=5)
        await _recv_until(session, _turn_complete)
        assert len(conv.user_turns) == 1 and len(conv.speeches) == 1  # VAD saw it, no 2nd reply
        turn = await conv.wait_for_user_turn_end(timeout=5, silence_ms=300)
        assert turn.voiced_seconds == pytest.approx(0.5, abs=0.05)

        # a test-driven speak wins over auto, and send_interrupted() stops it
        conv.auto = False
        speak = asyncio.create_task(conv.speak("Stop me.", seconds=5.0))
        await _recv_until(session, lambda m: bool(m.server_content and m.server_content.model_turn))
        await conv.send_interrupted()
        result = await asyncio.wait_for(speak, 5)
        assert result.interrupted and result.interrupted_by == "explicit"
        msgs = await _recv_until(session, _turn_complete)
        assert any(m.server_content and m.server_content.interrupted for m in msgs)

        ids = await conv.send_tool_calls([("a", {}), ("b", {"x": 1})])
        await conv.cancel_tool_calls(ids[:1])
        msgs = await _recv_until(session, lambda m: m.tool_call_cancellation is not None)
        cancel = msgs[-1].tool_call_cancellation
        assert cancel is not None and cancel.ids == ids[:1]
        assert conv.tool_calls[ids[0]].cancelled_at is not None
    await client.aio.aclose()


async def test_sdk_faults(fake: GeminiLiveFake) -> None:
    client = genai.Client(api_key="k")

    fake.fail_next_setups(1, code=1008, reason="models/x is not found")
    with pytest.raises(errors.APIError) as exc:
        async with client.aio.live.connect(model=MODEL, config=_config()):
            pass
    assert exc.value.code == 1008
    closed = await fake.connections[-1].wait_closed(timeout=5)
    assert closed.close_code == 1008 and not fake.conversations

    for fault, expected in (("close", 1011), ("abort", 1006)):
        async with client.aio.live.connect(model=MODEL, config=_config()) as session:
            conv = await fake.next_conversation(timeout=5)
            if fault == "close":
                await conv.close(1011, "Internal error encountered.")
            else:
                await conv.abort()
            with pytest.raises(errors.APIError) as exc:
                await _recv_until(session, lambda m: False)
            assert exc.value.code == expected
        closed = await conv.wait_for_close(timeout=5)
        assert closed.closed_by == ("server" if fault == "close" else "abort")

    async with client.aio.live.connect(model=MODEL, config=_config()) as session:
        conv = await fake.next_conversation(timeout=5)
        await conv.send_malformed("json")
        with pytest.raises(ValueError):
            await _recv_until(session, lambda m: False)
    await client.aio.aclose()


async def test_missing_key_and_bad_path(fake: GeminiLiveFake) -> None:
    ctx = fake.ssl_context()
    url = fake.base_url.replace("http://", "wss://")
    async with websockets.connect(url + WS_PATH, ssl=ctx) as ws:
        await ws.send(json.dumps({"setup": {"model": f"models/{MODEL}"}}))
        with pytest.raises(websockets.ConnectionClosed) as exc:
            await asyncio.wait_for(ws.recv(), 5)
    assert exc.value.rcvd is not None and exc.value.rcvd.code == 1008
    assert not fake.conversations

    # ?key= (older SDKs) is accepted; the frames are binary JSON
    async with websockets.connect(url + WS_PATH + "?key=q", ssl=ctx) as ws:
        await ws.send(json.dumps({"setup": {"model": f"models/{MODEL}"}}))
        first = await asyncio.wait_for(ws.recv(), 5)
        assert isinstance(first, bytes) and json.loads(first) == {"setupComplete": {}}

    with pytest.raises(websockets.InvalidStatus) as bad:
        async with websockets.connect(url + "/ws/nope", ssl=ctx):
            pass
    assert bad.value.response.status_code == 404


async def test_hang_at_setup_keeps_client_waiting(fake: GeminiLiveFake) -> None:
    fake.hang_next_setups(1)
    client = genai.Client(api_key="k")
    connect = asyncio.create_task(
        client.aio.live.connect(model=MODEL, config=_config()).__aenter__()
    )
    conn = await fake.wait_for_connections(1, timeout=5)
    await fake.wait_until(lambda: conn.setup is not None, 5, "setup")
    assert conn.hung_at_setup and not connect.done()
    connect.cancel()
    with pytest.raises(asyncio.CancelledError):
        await connect
    await client.aio.aclose()


# --------------------------------------------------------------------------- LiveKit plugin


def _frames(pcm: bytes, rate: int = OUTPUT_RATE, ms: int = 20) -> list[rtc.AudioFrame]:
    n = rate * ms // 1000
    return [
        rtc.AudioFrame(
            data=pcm[i : i + 2 * n], sample_rate=rate, num_channels=1, samples_per_channel=n
        )
        for i in range(0, len(pcm) - 2 * n + 1, 2 * n)
    ]


async def _plugin_session(fake: GeminiLiveFake) -> tuple[RealtimeSession, FakeConversation]:
    model = RealtimeModel(api_key="fake", instructions="be brief", voice="Kore")
    sess = model.session()
    conv = await fake.next_conversation(timeout=5)
    await conv.wait_for_connection(1, timeout=5)
    return sess, conv


async def test_plugin_audio_speak_reconnect(fake: GeminiLiveFake) -> None:
    sess, conv = await _plugin_session(fake)
    try:
        assert conv.voice == "Kore" and conv.system_instruction == "be brief"
        assert conv.setup["sessionResumption"] == {}

        for frame in _frames(speech_like_pcm(1.2)):
            sess.push_audio(frame)
        await conv.wait_for_voiced_audio(1.0, timeout=5)
        assert {len(c.pcm) for c in conv.audio} == {1600}  # the plugin's 50 ms chunks

        generations: asyncio.Queue[llm.GenerationCreatedEvent] = asyncio.Queue()
        sess.on("generation_created", generations.put_nowait)
        speak = asyncio.create_task(conv.speak("Hello from the fake.", seconds=0.5, realtime=False))
        ev = await asyncio.wait_for(generations.get(), 5)
        assert not ev.user_initiated
        gen = await asyncio.wait_for(_first(ev.message_stream), 5)

        async def drain() -> tuple[list[rtc.AudioFrame], str]:
            frames = [f async for f in gen.audio_stream]
            text = "".join([t async for t in gen.text_stream])
            return frames, text

        frames, text = await asyncio.wait_for(drain(), 5)
        assert sum(f.samples_per_channel for f in frames) == round(0.5 * OUTPUT_RATE)
        assert text == "Hello from the fake."
        assert (await speak).completed

        # 1011 mid-session: the plugin reconnects with the latest handle, same conversation
        handle = conv.handles[-1]
        await conv.close(1011)
        conn2 = await conv.wait_for_connection(2, timeout=5)
        assert conn2.resumed_handle == handle and conn2.resumed_latest
        assert conv.setups[-1]["sessionResumption"] == {"handle": handle}
        assert len(fake.conversations) == 1 and conv.connections[0].close_code == 1011
        fake.assert_no_protocol_errors()
    finally:
        await sess.aclose()


async def test_plugin_greeting_and_typed_text(fake: GeminiLiveFake) -> None:
    fake.auto = True
    fake.script.greeting_seconds = 0.3
    sess, conv = await _plugin_session(fake)
    try:
        fut = sess.generate_reply(instructions="Say hello.")
        req = await conv.wait_for_greeting_request(timeout=5)
        assert req.instructions == "Say hello."
        assert req.turns == [
            {"parts": [{"text": "Say hello."}], "role": "model"},
            {"parts": [{"text": "."}], "role": "user"},
        ]
        ev = await asyncio.wait_for(fut, 5)  # the auto greeting answers it
        assert ev.user_initiated

        # what AgentSession.generate_reply(user_input=...) does for lk.chat text (see README)
        await conv.wait_for_reply_request(timeout=5)  # claim the greeting's request
        chat_ctx = sess.chat_ctx.copy()
        chat_ctx.add_message(role="user", content="typed hello")
        await sess.update_chat_ctx(chat_ctx)
        fut = sess.generate_reply()
        assert await conv.wait_for_user_text(timeout=5) == "typed hello"
        cc = await conv.wait_for_reply_request(timeout=5)
        assert cc.turns == [{"parts": [{"text": "."}], "role": "user"}]
        ev = await asyncio.wait_for(fut, 5)
        gen = await asyncio.wait_for(_first(ev.message_stream), 5)
        text = await asyncio.wait_for(_join(gen.text_stream), 10)
        assert text == "You said: typed hello"
    finally:
        await sess.aclose()


async def _first(stream: AsyncIterable[llm.MessageGeneration]) -> llm.MessageGeneration:
    async for item in stream:
        return item
    raise AssertionError("message stream ended empty")


async def _join(stream: AsyncIterable[str]) -> str:
    return "".join([t async for t in stream])


async def test_plugin_connect_then_die_loop(fake: GeminiLiveFake) -> None:
    fake.die_after_setup(3)
    sess, conv = await _plugin_session(fake)
    try:
        conn = await conv.wait_for_connection(4, timeout=10)
        assert len(fake.conversations) == 1 and conn.index == 3
        assert [c.close_code for c in conv.connections[:3]] == [1011, 1011, 1011]
        assert [c.resumed_handle for c in conv.connections[1:]] == conv.handles[:3]
    finally:
        await sess.aclose()


async def test_agent_session_typed_text(fake: GeminiLiveFake) -> None:
    """The real lk.chat path: AgentSession.generate_reply(user_input=...), no room needed."""
    fake.auto = True
    fake.script.greeting_seconds = 0.3
    session: AgentSession[None] = AgentSession(llm=RealtimeModel(api_key="fake", voice="Kore"))
    await session.start(Agent(instructions="be brief"))
    try:
        conv = await fake.next_conversation(timeout=5)
        handle = session.generate_reply(instructions="Greet.")
        await asyncio.wait_for(handle.wait_for_playout(), 10)
        handle = session.generate_reply(user_input="typed hi")
        assert await conv.wait_for_user_text(timeout=5) == "typed hi"
        await asyncio.wait_for(handle.wait_for_playout(), 10)
        assert [(c.turn_complete, c.parts) for c in conv.client_contents] == [
            (True, [("model", "Greet."), ("user", ".")]),
            (False, [("user", "typed hi")]),
            (True, [("user", ".")]),
        ]
        assert [(m.role, m.text_content) for m in session.history.messages()] == [
            ("assistant", fake.script.greeting_text),
            ("user", "typed hi"),
            ("assistant", "You said: typed hi"),
        ]
        assert conv.setups[-1]["systemInstruction"]["parts"] == [{"text": "be brief"}]
    finally:
        await session.aclose()

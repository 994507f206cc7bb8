"""The worker's call recorder (agent/recorder.py), fed with the framework's real event
types, writing to a real desk; its metrics and its OpenTelemetry spans."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from livekit.agents import llm
from livekit.agents.metrics import RealtimeModelMetrics
from livekit.agents.voice.events import (
    AgentStateChangedEvent,
    CloseEvent,
    CloseReason,
    ConversationItemAddedEvent,
    FunctionToolsExecutedEvent,
    MetricsCollectedEvent,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY

from agent import telemetry
from agent.faults import record_recovery, recovery_listener
from agent.recorder import (
    CallRecorder,
    Prices,
    case_touched,
    outcome_of,
    redact_arguments,
)
from agent.tools import sentences
from desk import Desk
from desk.calls import CallBatch, Usage


class Clock:
    def __init__(self) -> None:
        self.t = 1_780_000_000.0  # wall
        self.m = 5_000.0  # monotonic

    def wall(self) -> float:
        return self.t

    def mono(self) -> float:
        return self.m

    def advance(self, s: float) -> None:
        self.t += s
        self.m += s


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    d = Desk.open(tmp_path / "desk.sqlite3")
    yield d
    d.close()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.use_provider(provider)
    yield exporter
    telemetry.reset_for_tests()


PRICES = Prices(input_text=0.5, input_audio=3.0, output_text=2.0, output_audio=12.0)


def recorder(desk: Desk, clock: Clock, **kw: Any) -> CallRecorder:
    rec = CallRecorder(
        desk.calls.write,
        scope="room-a:AJ_1",
        room="room-a",
        job_id="AJ_1",
        prices=PRICES,
        model="gemini-test",
        wall=clock.wall,
        mono=clock.mono,
        **kw,
    )
    rec.identify("staff", "clerk", "web")
    return rec


def message(role: str, text: str, at: float, *, interrupted: bool = False, id: str = "") -> Any:
    item = llm.ChatMessage(role=role, content=[text], interrupted=interrupted, created_at=at)
    if id:
        item.id = id
    return ConversationItemAddedEvent(item=item)


def tools_event(*calls: tuple[str, str, dict[str, Any], float, float, Any]) -> Any:
    fcs, outs = [], []
    for call_id, name, args, start, end, out in calls:
        fcs.append(
            llm.FunctionCall(call_id=call_id, name=name, arguments=json.dumps(args),
                             created_at=start)
        )  # fmt: skip
        if isinstance(out, llm.FunctionCallOutput):
            out.created_at = end
            outs.append(out)
        else:
            outs.append(
                llm.FunctionCallOutput(call_id=call_id, name=name, output=str(out),
                                       is_error=False, created_at=end)
            )  # fmt: skip
    return FunctionToolsExecutedEvent(function_calls=fcs, function_call_outputs=outs)


def usage_metrics(prompt_audio: int, prompt_text: int, out_audio: int, cached: int = 0) -> Any:
    m = RealtimeModelMetrics(
        request_id="r",
        timestamp=0.0,
        input_tokens=prompt_audio + prompt_text,
        output_tokens=out_audio,
        total_tokens=prompt_audio + prompt_text + out_audio,
        input_token_details=RealtimeModelMetrics.InputTokenDetails(
            audio_tokens=prompt_audio, text_tokens=prompt_text, cached_tokens=cached
        ),
        output_token_details=RealtimeModelMetrics.OutputTokenDetails(audio_tokens=out_audio),
    )
    return MetricsCollectedEvent(metrics=m)


def state(new: str) -> Any:
    return AgentStateChangedEvent(old_state="listening", new_state=new)


def sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_one_call_on_the_record(desk: Desk, spans: InMemorySpanExporter) -> None:
    clock = Clock()
    rec = recorder(desk, clock)
    t0 = clock.t
    latency_before = sample("kaiwa_turn_latency_seconds_count", {"role": "staff"})
    ok_before = sample("kaiwa_tool_calls_total", {"tool": "create_case", "outcome": "ok"})

    rec.on_item_added(message("assistant", "Hello, reception.", t0 + 0.5))
    # the caller speaks; their end of speech is seen 0.8 s before the gate says so
    clock.advance(3.0)
    rec.caller_speech_ended(clock.m - 0.8)
    ended_at = clock.t - 0.8
    rec.on_item_added(message("user", "Open a case for Ann, 090-1234-5678.", t0 + 2.0, id="u1"))
    # a tool runs for 1.5 s inside the wait
    rec.on_tools_executed(
        tools_event(
            ("fc-1", "create_case", {"customer_name": "Ann Lee", "phone": "090-1234-5678",
                                     "email": "ann@example.com", "symptom": "call 0312345678"},
             ended_at + 0.2, ended_at + 1.7, {"id": "R-1042", "status": "received"}),
        )
    )  # fmt: skip
    clock.advance(2.0)  # first agent audio 2.8 s after the end of speech; 1.5 s of it tools
    rec.on_agent_state(state("speaking"))
    rec.on_item_added(message("assistant", "Opened R-1042 for", clock.t, interrupted=True))
    rec.on_metrics(usage_metrics(prompt_audio=1000, prompt_text=200, out_audio=500))
    with_listener = recovery_listener.set(rec.recovery)
    try:
        record_recovery("gemini_reconnect", 0.75, cause="1011", resumed_with_handle=True)
    finally:
        recovery_listener.reset(with_listener)
    assert await rec.flush()
    clock.advance(1.0)
    rec.on_close(CloseEvent(reason=CloseReason.PARTICIPANT_DISCONNECTED))
    await rec.aclose("ignored: the session's reason wins")

    [call] = desk.calls.list_calls()
    d = desk.calls.get_call(call.id)
    c = d.call
    assert (c.scope, c.jobs, c.role, c.identity, c.channel, c.model, c.currency) == (
        "room-a:AJ_1", ["AJ_1"], "staff", "clerk", "web", "gemini-test", "USD"
    )  # fmt: skip
    assert c.end_reason == "participant_disconnected" and c.duration_s == pytest.approx(6.0)
    assert [(s.speaker, s.text, s.interrupted) for s in d.segments] == [
        ("agent", "Hello, reception.", False),
        ("caller", "Open a case for Ann, 090-1234-5678.", False),
        ("agent", "Opened R-1042 for", True),
    ]
    [tool] = d.tools
    assert (tool.call_key, tool.name, tool.outcome, tool.case_id, tool.duration_ms) == (
        "fc-1", "create_case", "ok", "R-1042", 1500
    )  # fmt: skip
    args = json.loads(tool.arguments)
    assert args == {
        "customer_name": "Ann Lee",
        "phone": "***-****-5678",
        "email": "a***@example.com",
        "symptom": "call [phone]",
    }
    [recovery] = d.recoveries
    assert recovery.kind == "gemini_reconnect" and recovery.duration_s == 0.75
    assert json.loads(recovery.detail) == {"cause": "1011", "resumed_with_handle": True}
    assert c.usage == Usage(input_audio=1000, input_text=200, output_audio=500)
    assert c.cost == pytest.approx((1000 * 3.0 + 200 * 0.5 + 500 * 12.0) / 1e6)
    [turn] = d.turns
    assert (turn.latency_ms, turn.tool_ms) == (1300, 1500)
    assert (c.latency_p50_ms, c.latency_p95_ms) == (1300, 1300)

    assert sample("kaiwa_turn_latency_seconds_count", {"role": "staff"}) == latency_before + 1
    assert sample("kaiwa_tool_calls_total", {"tool": "create_case", "outcome": "ok"}) == (
        ok_before + 1
    )

    # the span tree: kaiwa.call with the tool call and the recovery below it, in its time
    finished = {s.name: s for s in spans.get_finished_spans()}
    root, tool_span, rec_span = (
        finished["kaiwa.call"],
        finished["kaiwa.tool_call"],
        finished["kaiwa.recovery"],
    )
    assert root.parent is None
    for child in (tool_span, rec_span):
        assert child.parent is not None and child.parent.span_id == root.context.span_id
        assert child.context.trace_id == root.context.trace_id
    assert tool_span.attributes is not None and root.attributes is not None
    assert tool_span.attributes["kaiwa.case_id"] == "R-1042"
    assert tool_span.attributes["kaiwa.outcome"] == "ok"
    assert (tool_span.end_time or 0) - (tool_span.start_time or 0) == pytest.approx(1.5e9)
    assert root.attributes["kaiwa.end_reason"] == "participant_disconnected"
    assert "phone" not in json.dumps(dict(tool_span.attributes))


async def test_a_write_that_fails_is_kept_for_the_next_flush(desk: Desk) -> None:
    clock = Clock()
    fail = {"n": 1}
    written: list[CallBatch] = []

    def flaky(batch: CallBatch) -> int:
        if fail["n"]:
            fail["n"] -= 1
            raise RuntimeError("database is busy")
        written.append(batch)
        return desk.calls.write(batch)

    rec = CallRecorder(flaky, scope="r:j", room="r", job_id="j", wall=clock.wall, mono=clock.mono)
    rec.identify("caller", "guest-1", None)
    rec.on_item_added(message("assistant", "Hello.", clock.t))
    rec.on_metrics(usage_metrics(10, 0, 20))
    assert not await rec.flush()
    rec.on_item_added(message("user", "Hi.", clock.t + 1))
    rec.on_metrics(usage_metrics(5, 0, 0))
    assert await rec.flush()
    [batch] = written
    assert [s.text for s in batch.segments] == ["Hello.", "Hi."]
    assert batch.usage.input_audio == 15 and batch.role == "caller"
    assert desk.calls.list_calls()[0].segments == 2


async def test_nothing_is_written_for_a_job_whose_caller_never_came(desk: Desk) -> None:
    clock = Clock()
    rec = CallRecorder(desk.calls.write, scope="r:j", room="r", job_id="j", wall=clock.wall)
    rec.start()
    await asyncio.sleep(0)
    await rec.aclose("no caller")
    assert desk.calls.list_calls() == []


async def test_the_flush_loop_writes_while_the_call_goes_on(desk: Desk) -> None:
    rec = CallRecorder(desk.calls.write, scope="r:j", room="r", job_id="j", flush_s=0.05)
    rec.identify("staff", "clerk", "livekit-client")
    rec.start()
    rec.on_item_added(message("assistant", "Hello.", 1_780_000_000.0))
    for _ in range(100):
        await asyncio.sleep(0.02)
        if rec.writes:
            break
    [call] = desk.calls.list_calls()
    assert call.segments == 1 and call.ended_at is None  # on the record before the end
    await rec.aclose("job_shutdown")
    assert desk.calls.list_calls()[0].end_reason == "job_shutdown"


def test_tool_outcomes() -> None:
    def out(output: str, *, is_error: bool = False, reply: bool = True) -> Any:
        return llm.FunctionCallOutput(
            call_id="c", name="t", output=output, is_error=is_error, reply_required=reply
        )

    assert outcome_of(out("{'id': 'R-1'}")) == ("ok", None)
    assert outcome_of(out("", reply=False)) == ("cancelled", None)
    for lang in ("en", "ja"):
        text = sentences.timed_out("create_case", 15.0, lang)
        assert outcome_of(out(text, is_error=True))[0] == "timeout"
    assert outcome_of(out("There is no case R-9.", is_error=True)) == (
        "error",
        "There is no case R-9.",
    )


def test_redaction_and_case_touched() -> None:
    redacted = json.loads(
        redact_arguments(
            json.dumps(
                {
                    "case_id": "R-1001",
                    "phone_last4": "5678",
                    "note": {"text": "mail me at bob@example.org"},
                    "quote_yen": 30000,
                }
            )
        )
    )
    assert redacted == {
        "case_id": "R-1001",
        "phone_last4": "****",
        "note": {"text": "mail me at [email]"},
        "quote_yen": 30000,
    }
    assert json.loads(redact_arguments("not json 090-1234-5678")) == "not json [phone]"
    assert case_touched('{"case_id": "R-1001"}', "ok") == "R-1001"
    assert case_touched("{}", "{'id': 'R-7', 'x': 'R-7'}") == "R-7"
    assert case_touched("{}", "[R-1, R-2]") is None


def test_prices() -> None:
    p = Prices(input_text=1.0, input_audio=10.0, output_text=2.0, output_audio=20.0)
    u = Usage(input_audio=1_000_000, input_text=1_000_000, output_audio=1_000_000)
    assert p.cost(u) == pytest.approx(31.0)
    cached = Usage(input_audio=1_000_000, input_cached=500_000)
    assert p.cost(cached) == pytest.approx(10.0)  # no cached price: no discount
    discounted = Prices(input_audio=10.0, cached_input=1.0)
    assert discounted.cost(cached) == pytest.approx(5.0 + 0.5)


def test_the_grafana_dashboard_uses_only_metrics_kaiwa_exports() -> None:
    """docs/grafana-kaiwa.json is not run here; at least its metric names must exist."""
    import re
    from pathlib import Path

    import agent.faults  # noqa: F401  (registers kaiwa_recoveries_*)

    exported = {
        s.name
        for metric in REGISTRY.collect()
        if metric.name.startswith("kaiwa_")
        for s in metric.samples
    } | {m.name for m in REGISTRY.collect() if m.name.startswith("kaiwa_")}
    text = (Path(__file__).resolve().parents[2] / "docs" / "grafana-kaiwa.json").read_text()
    used = set(re.findall(r"kaiwa_[a-z_]+", text))
    base = {re.sub(r"_(bucket|total|count|sum)$", "", u) for u in used}
    assert used and base <= {re.sub(r"_(bucket|total|count|sum)$", "", e) for e in exported}, (
        base - exported
    )

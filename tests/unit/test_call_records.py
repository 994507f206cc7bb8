"""Call records in the desk (desk/calls.py), on SQLite and PostgreSQL alike, and the CLI."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from desk import Desk
from desk.calls import (
    CallBatch,
    CallNotFound,
    RecoveryRecord,
    Segment,
    ToolRecord,
    TurnRecord,
    Usage,
    percentile,
)
from desk.cli import main
from tests.support.postgres import desk_target, postgres  # noqa: F401

T0 = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


@pytest.fixture
def desk(desk_target: str) -> Iterator[Desk]:  # noqa: F811 (a fixture)
    desk = Desk.open(desk_target)
    yield desk
    desk.close()


def first_batch(**extra: object) -> CallBatch:
    b = CallBatch(
        scope="room-1:AJ_first",
        room="room-1",
        job_id="AJ_first",
        started_at=at(0),
        role="staff",
        identity="clerk",
        channel="web",
        model="gemini-test",
        currency="USD",
    )
    for k, v in extra.items():
        setattr(b, k, v)
    return b


def test_a_call_collects_its_batches_in_order(desk: Desk) -> None:
    calls = desk.calls
    cid = calls.write(
        first_batch(
            segments=[Segment(at(1), "agent", "Hello, how can I help?")],
            usage=Usage(input_audio=100, input_text=20, output_audio=300),
            cost=0.01,
        )
    )
    calls.write(
        CallBatch(
            scope="room-1:AJ_first",
            room="room-1",
            job_id="AJ_first",
            segments=[
                Segment(at(3), "caller", "Open a case for Ann Lee."),
                Segment(at(6), "agent", "Opened R-1001 for", interrupted=True),
            ],
            tools=[
                ToolRecord(
                    at(4),
                    "fc-1",
                    "create_case",
                    '{"customer_name": "Ann Lee"}',
                    "ok",
                    420,
                    case_id="R-1001",
                ),
                ToolRecord(
                    at(5),
                    "fc-2",
                    "add_note",
                    "{}",
                    "timeout",
                    15000,
                    error="took longer than 15 seconds",
                ),
            ],
            recoveries=[RecoveryRecord(at(5.5), "gemini_reconnect", 0.8, '{"cause": "1011"}')],
            turns=[TurnRecord(at(3.2), 650, tool_ms=420), TurnRecord(at(7), 900)],
            usage=Usage(input_audio=50, input_cached=10, output_text=5),
            cost=0.02,
        )
    )
    calls.write(
        CallBatch(
            scope="room-1:AJ_first",
            room="room-1",
            job_id="AJ_first",
            ended_at=at(9),
            end_reason="participant_disconnected",
        )
    )
    d = calls.get_call(cid)
    c = d.call
    assert (c.room, c.jobs, c.role, c.identity, c.channel, c.model) == (
        "room-1", ["AJ_first"], "staff", "clerk", "web", "gemini-test"
    )  # fmt: skip
    assert c.started_at == at(0) and c.ended_at == at(9) and c.duration_s == 9
    assert c.end_reason == "participant_disconnected"
    assert c.usage == Usage(input_audio=150, input_text=20, input_cached=10, output_audio=300,
                            output_text=5)  # fmt: skip
    assert c.cost == pytest.approx(0.03) and c.currency == "USD"
    assert (c.segments, c.tool_calls, c.recoveries, c.turns) == (3, 2, 1, 2)
    assert (c.latency_p50_ms, c.latency_p95_ms) == (650, 900)
    assert [(s.speaker, s.text, s.interrupted) for s in d.segments] == [
        ("agent", "Hello, how can I help?", False),
        ("caller", "Open a case for Ann Lee.", False),
        ("agent", "Opened R-1001 for", True),
    ]
    assert [(t.call_key, t.outcome, t.case_id, t.duration_ms) for t in d.tools] == [
        ("fc-1", "ok", "R-1001", 420),
        ("fc-2", "timeout", None, 15000),
    ]
    assert d.recoveries[0].kind == "gemini_reconnect" and d.recoveries[0].duration_s == 0.8
    kinds = [type(i).__name__ for i in d.timeline()]
    assert kinds == ["Segment", "Segment", "ToolRecord", "ToolRecord", "RecoveryRecord",
                     "Segment"]  # fmt: skip
    assert calls.get_call(f"C-{cid}").call.id == cid
    assert calls.get_call("room-1:AJ_first").call.id == cid
    assert [x.id for x in calls.list_calls(case_id="r-1001")] == [cid]
    assert calls.list_calls(case_id="R-9999") == []


def test_a_replacement_job_appends_to_the_same_call(desk: Desk) -> None:
    calls = desk.calls
    cid = calls.write(
        first_batch(segments=[Segment(at(1), "agent", "Hello.")], turns=[TurnRecord(at(1), 500)])
    )
    # the first job died without ending the call; its replacement carries on in the same scope
    again = calls.write(
        CallBatch(
            scope="room-1:AJ_first",
            room="room-1",
            job_id="AJ_second",
            started_at=at(20),
            segments=[Segment(at(21), "agent", "Sorry, we were cut off.")],
            recoveries=[RecoveryRecord(at(20), "job_redispatch", 4.0)],
            turns=[TurnRecord(at(22), 1500)],
            ended_at=at(30),
            end_reason="participant_disconnected",
        )
    )
    assert again == cid
    [only] = calls.list_calls()
    assert only.jobs == ["AJ_first", "AJ_second"]
    assert only.started_at == at(0)  # the first job's start stays
    assert only.segments == 2 and only.recoveries == 1
    assert (only.latency_p50_ms, only.latency_p95_ms) == (500, 1500)


def test_purge_removes_old_transcripts_and_keeps_aggregates(desk: Desk) -> None:
    calls = desk.calls
    old = calls.write(
        first_batch(
            segments=[Segment(at(1), "caller", "my number is 090-1234-5678")],
            tools=[ToolRecord(at(2), "fc", "find_cases", '{"name": "Ann"}', "ok", 10)],
            usage=Usage(input_audio=7),
            cost=0.5,
        )
    )
    calls.clock = lambda: T0 + dt.timedelta(days=40)
    recent = calls.write(
        CallBatch(
            scope="room-2:AJ_x",
            room="room-2",
            job_id="AJ_x",
            started_at=at(86400 * 39),
            segments=[Segment(at(86400 * 39 + 1), "caller", "hello")],
        )
    )
    assert calls.purge_transcripts(30) == 1
    assert calls.purge_transcripts(30) == 0  # already purged
    d = calls.get_call(old)
    assert d.segments == [] and d.call.purged_at is not None
    assert d.call.segments == 1 and d.call.cost == 0.5 and d.call.usage.input_audio == 7
    assert [(t.name, t.outcome, t.arguments) for t in d.tools] == [("find_cases", "ok", "")]
    assert len(calls.get_call(recent).segments) == 1


def test_unknown_call_is_a_sentence(desk: Desk) -> None:
    with pytest.raises(CallNotFound, match="no call record C-9"):
        desk.calls.get_call("C-9")
    with pytest.raises(CallNotFound):
        desk.calls.get_call("nonsense")


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([5.0], 95) == 5.0
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0 and percentile(values, 95) == 95.0


def test_cli_lists_shows_and_purges(
    tmp_path: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    db = str(tmp_path / "desk.sqlite3")  # type: ignore[operator]
    desk = Desk.open(db)
    cid = desk.calls.write(
        first_batch(
            segments=[Segment(at(1), "agent", "Hello."), Segment(at(2), "caller", "Hi.")],
            tools=[ToolRecord(at(3), "fc-1", "create_case", "{}", "ok", 12, case_id="R-1001")],
            recoveries=[RecoveryRecord(at(4), "gemini_reconnect", 0.5)],
            usage=Usage(input_audio=1000, output_audio=2000),
            cost=0.0123,
        )
    )
    assert main(["--db", db, "calls", "list"]) == 0
    out = capsys.readouterr().out
    assert f"C-{cid}" in out and "staff:clerk" in out and "0.0123 USD" in out
    assert main(["--db", db, "calls", "show", f"C-{cid}"]) == 0
    out = capsys.readouterr().out
    assert "agent   Hello." in out and "caller  Hi." in out
    assert "create_case({}) ok -> R-1001" in out and "gemini_reconnect 0.50s" in out
    assert "Tokens in: 1,000" in out and "(estimated)" in out
    assert main(["--db", db, "calls", "show", "C-77"]) == 2
    assert "no call record" in capsys.readouterr().err
    monkeypatch.delenv("KAIWA_CALL_RETENTION_DAYS", raising=False)
    assert main(["--db", db, "calls", "purge"]) == 2
    monkeypatch.setenv("KAIWA_CALL_RETENTION_DAYS", "0")
    assert main(["--db", db, "calls", "purge"]) == 0
    assert "1 call(s)" in capsys.readouterr().out
    assert desk.calls.get_call(cid).segments == []


def test_a_later_final_transcript_of_the_same_item_replaces_it(desk: Desk) -> None:
    calls = desk.calls
    cid = calls.write(first_batch(segments=[Segment(at(1), "caller", "Open a", item_id="it-1")]))
    calls.write(
        CallBatch(
            scope="room-1:AJ_first",
            room="room-1",
            job_id="AJ_first",
            segments=[
                Segment(at(2), "agent", "Sure.", item_id="it-2"),
                Segment(at(3), "caller", "Open a case please", item_id="it-1"),
            ],
        )
    )
    d = calls.get_call(cid)
    assert [(s.speaker, s.text) for s in d.segments] == [
        ("caller", "Open a case please"),
        ("agent", "Sure."),
    ]
    assert d.call.segments == 2

"""The plain classes of agent/gemini/, without a socket: the reply clock, the tool ledger,
the reconnect budget, the GoAway plan, the speech gate, model families, the private-name
check, and the connection proxy's routing of tool responses."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from google.genai import types

from agent.gemini import private
from agent.gemini.budget import BudgetExhausted, ReconnectBudget
from agent.gemini.closes import close_code, describe_close
from agent.gemini.connection import LiveConnection
from agent.gemini.families import declared_behavior, family_of, problems
from agent.gemini.goaway import GoAwayPlan, seconds
from agent.gemini.ledger import CallStatus, ToolLedger
from agent.gemini.reply_clock import ReplyClock
from agent.gemini.speech import GateOptions, SpeechGate, TurnAudio

# ---------------------------------------------------------------- reply clock


def test_a_caller_turn_with_no_answer_is_overdue_after_the_bound() -> None:
    clock = ReplyClock(bound_s=8)
    clock.server_message(0)
    clock.caller_speaking()
    clock.due("caller_turn", now=10)
    assert clock.overdue(17.9) is None
    late = clock.overdue(18.1)
    assert late is not None and late.reason == "caller_turn" and late.silent_for >= 8


def test_a_transcription_alone_does_not_settle_a_due_reply() -> None:
    clock = ReplyClock(bound_s=8)
    clock.due("caller_turn", now=0)
    clock.server_message(5)  # inputTranscription arrived, then nothing
    assert clock.overdue(12) is None and clock.overdue(13.1) is not None


def test_a_reply_settles_it_and_a_stall_mid_reply_is_caught() -> None:
    clock = ReplyClock(bound_s=8)
    clock.due("tool_response", now=0)
    clock.reply_started(1)
    assert clock.overdue(8.5) is None
    assert clock.overdue(9.1) is not None  # audio stopped mid-reply
    clock.reply_ended(9.2)
    assert clock.overdue(100) is None


def test_the_caller_turn_restarts_the_clock_and_speech_pauses_it() -> None:
    clock = ReplyClock(bound_s=8)
    clock.due("caller_turn", now=0)
    clock.caller_speaking()  # they went on talking
    assert clock.overdue(50) is None
    clock.due("caller_turn", now=60)
    assert clock.due_since == 60


def test_an_earlier_reason_is_kept_over_a_later_one() -> None:
    clock = ReplyClock(bound_s=8)
    clock.due("tool_response", now=0)
    clock.due("client_turn", now=5)
    assert clock.due_since == 0 and clock.reason == "tool_response"


# ---------------------------------------------------------------- tool ledger


def test_an_answer_goes_to_the_connection_that_asked_once() -> None:
    ledger = ToolLedger()
    ledger.connected()
    ledger.issued("a", "create_case")
    assert ledger.outstanding() == ["a"]
    assert ledger.route("a") == "send"
    assert ledger.route("a") == "drop"  # plugin re-send on the same connection
    ledger.handle_received()
    assert ledger.outstanding() == []


def test_a_call_the_resumed_server_never_issued_is_given_as_text_once() -> None:
    ledger = ToolLedger()
    ledger.connected()
    ledger.issued("a", "create_case")
    ledger.connected()  # 1011: resumed from a handle older than the call
    assert ledger.route("a") == "as_text"
    assert ledger.route("a") == "drop"


def test_an_answer_lost_with_its_connection_is_given_again_as_text() -> None:
    ledger = ToolLedger()
    ledger.connected()
    ledger.issued("a", "add_note")
    assert ledger.route("a") == "send"
    ledger.connected()  # died before a resumable handle covered the answer
    assert ledger.route("a") == "as_text"
    assert ledger.route("a") == "drop"


def test_a_settled_answer_is_never_repeated_after_a_resume() -> None:
    ledger = ToolLedger()
    ledger.connected()
    ledger.issued("a", "add_note")
    ledger.route("a")
    ledger.handle_received()
    ledger.connected()
    assert ledger.route("a") == "drop"


def test_cancelled_calls_are_not_answered_and_reissued_ids_are_answered_again() -> None:
    ledger = ToolLedger()
    ledger.connected()
    ledger.issued("a", "x")
    ledger.issued("b", "y")
    assert ledger.cancelled(["a", "zzz"]) == ["a"]
    assert ledger.route("a") == "drop"
    assert ledger.count(CallStatus.CANCELLED) == 1
    ledger.route("b")
    ledger.issued("b", "y")  # the server asks again under the same id
    assert ledger.route("b") == "send"
    assert ledger.route("unknown-synthetic") == "send"


# ---------------------------------------------------------------- reconnect budget


def test_backoff_from_the_first_retry_and_a_cap_per_window() -> None:
    budget = ReconnectBudget(max_attempts=4, window_s=60, base_s=0.25, cap_s=4, jitter=lambda: 1)
    delays = []
    for t in range(4):
        delays.append(budget.next_delay(float(t)))
        budget.attempted(float(t))
    assert delays == [0.0, 0.25, 0.5, 1.0]  # no burst of instant retries at call start
    with pytest.raises(BudgetExhausted):
        budget.next_delay(5)
    assert budget.next_delay(100) == 0.0  # the window moved on


# ---------------------------------------------------------------- GoAway


def test_go_away_moves_when_idle_or_at_the_deadline() -> None:
    plan = GoAwayPlan.start(now=0, time_left_s=10, margin_s=2)
    assert not plan.should_move(1, generating=True, outstanding_calls=0)
    assert not plan.should_move(1, generating=False, outstanding_calls=1)
    assert plan.should_move(1, generating=False, outstanding_calls=0)
    assert plan.should_move(8, generating=True, outstanding_calls=1)
    assert plan.forced(8, generating=True, outstanding_calls=1)
    assert seconds("1.500s") == 1.5 and seconds(None) == 0.0


# ---------------------------------------------------------------- speech gate


def test_the_gate_finds_a_turn_and_ignores_a_click() -> None:
    gate = SpeechGate(GateOptions(rms_threshold=400, min_speech_s=0.25, end_silence_s=0.8))
    loud = (np.ones(320, dtype=np.int16) * 3000).tobytes()
    quiet = bytes(640)
    edges = [gate.push(loud, 0.02) for _ in range(5)]  # 100 ms: a click
    edges += [gate.push(quiet, 0.02) for _ in range(50)]
    assert all(e is None for e in edges)
    edges = [gate.push(loud, 0.02) for _ in range(40)] + [gate.push(quiet, 0.02) for _ in range(50)]
    assert edges.count("started") == 1 and edges.count("ended") == 1
    assert gate.turn_start is not None and gate.turn_end is not None
    assert gate.turn_end - gate.turn_start == pytest.approx(0.8, abs=0.05)


def test_turn_audio_keeps_references_in_a_bounded_window() -> None:
    audio = TurnAudio(keep_s=1.0, chunk_s=0.02)
    for i in range(100):
        audio.add(i * 0.02, i)
    assert len(audio.since(0)) == 50 and audio.since(1.9) == [95, 96, 97, 98, 99]


# ---------------------------------------------------------------- model families


def test_families_and_what_they_refuse() -> None:
    assert family_of("gemini-3.8-live").default_tool_behavior == "non_blocking"
    assert family_of("models/gemini-3.8-live-extended-thinking").idle_signal == "interaction_status"
    assert family_of("gemini-2.5-flash-native-audio-preview-12-2025").name == "2.5"
    found = problems(
        "gemini-3.8-live", affective_dialog=True, proactive_audio=False, thinking_budget=128
    )
    assert len(found) == 3 and all("KAIWA_" in line for line in found)
    assert problems("gemini-2.5-flash-native-audio-preview-12-2025", affective_dialog=True,
                    proactive_audio=False, thinking_budget=128) == []  # fmt: skip
    assert declared_behavior(None) == "blocking"  # never the 3.8 default by accident


def test_settings_refuse_an_option_the_model_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.settings import SettingsError, load_settings

    monkeypatch.setenv("KAIWA_MODEL", "gemini-3.8-live")
    monkeypatch.setenv("KAIWA_PROACTIVE_AUDIO", "false")
    with pytest.raises(SettingsError, match="KAIWA_PROACTIVE_AUDIO"):
        load_settings()


# ---------------------------------------------------------------- private names


def test_every_private_name_kaiwa_hooks_is_there() -> None:
    private.check()


def test_a_moved_private_name_stops_the_worker_with_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from livekit.plugins.google.realtime import realtime_api

    monkeypatch.delattr(realtime_api.RealtimeSession, "_handle_go_away")
    with pytest.raises(private.PrivateNameMissing) as err:
        private.check()
    assert "livekit-plugins-google 1.8" in str(err.value) and "_handle_go_away" in str(err.value)
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------- close codes


def test_close_codes_become_lines_a_person_can_act_on() -> None:
    err = Exception("1008 None. models/x is not found")
    assert close_code(err) == 1008
    assert "KAIWA_MODEL" in describe_close(1008)


# ---------------------------------------------------------------- the proxy's routing


class _Inner:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    async def send_tool_response(self, *, function_responses: Any) -> None:
        self.sent.append(("tool_response", [r.id for r in function_responses]))

    async def send_client_content(self, **kwargs: Any) -> None:
        self.sent.append(("client_content", kwargs))


async def test_the_proxy_answers_each_id_once_and_gives_lost_ones_as_text() -> None:
    ledger = ToolLedger()
    ledger.connected()
    ledger.issued("a", "create_case")
    ledger.issued("b", "get_case")
    ledger.connected()
    ledger.issued("c", "add_note")
    inner = _Inner()
    texts: list[int] = []
    conn = LiveConnection(
        inner,  # type: ignore[arg-type]
        ledger=ledger,
        on_message=lambda m: None,
        on_text_sent=lambda: texts.append(1),
    )

    def resp(i: str) -> types.FunctionResponse:
        return types.FunctionResponse(id=i, name="t", response={"output": {"id": "R-1001"}})

    await conn.send_tool_response(function_responses=[resp("a"), resp("c")])
    await conn.send_tool_response(function_responses=[resp("a"), resp("c")])
    kinds = [k for k, _ in inner.sent]
    assert kinds == ["tool_response", "client_content"]
    assert inner.sent[0][1] == ["c"]
    text = inner.sent[1][1]["turns"][0].parts[0].text
    assert "R-1001" in text and "Do not call" in text and inner.sent[1][1]["turn_complete"]
    assert texts == [1]


def test_a_withdrawn_call_is_not_waited_on() -> None:
    ledger = ToolLedger()
    ledger.connected()
    ledger.issued("a", "add_note")
    assert not ledger.settled_or_cancelled("a")
    ledger.cancelled(["a"])
    assert ledger.settled_or_cancelled("a")


def test_a_reply_cut_by_a_lost_connection_is_not_overdue_later() -> None:
    clock = ReplyClock(bound_s=2)
    clock.reply_started(0)
    clock.generating = False  # what the session does when the generation ends with the socket
    assert clock.overdue(100) is None

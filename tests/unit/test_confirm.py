"""Confirmation means yes: only a final answer that began after the proposal and reads as
yes (Japanese or English), typed text, or the page's button unlocks the action; "no" drops
it; the late tail of the sentence that asked for the action does not count."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from livekit.agents import ToolError

from agent.tools.confirm import (
    MAX_SUMMARY_CHARS,
    AttributePublisher,
    Confirmations,
    button_instructions,
    classify,
)


@pytest.mark.parametrize(
    "text",
    ["yes", "Yes, please go ahead.", "yeah do it", "OK", "sure", "that's right", "go ahead",
     "はい", "はい、お願いします", "お願いします", "ええ、それで", "大丈夫です", "うん", "了解です",
     "えっと、はい"],
)  # fmt: skip
def test_yes_in_both_languages(text: str) -> None:
    assert classify(text) == "yes"


@pytest.mark.parametrize(
    "text",
    ["no", "No, don't do that.", "nope", "wait", "stop", "don't", "never mind",
     "いいえ", "いや、やめてください", "やめて", "結構です", "ちょっと待って", "違います"],
)  # fmt: skip
def test_no_in_both_languages(text: str) -> None:
    assert classify(text) == "no"


@pytest.mark.parametrize(
    "text",
    ["please cancel R-1001", "hmm", "what does it cost?", "yes, but don't cancel it",
     "はい、でもやめてください", "キャンセルしてください"],
)  # fmt: skip
def test_unclear_answers_are_neither(text: str) -> None:
    assert classify(text) is None


def _pending(conf: Confirmations) -> str:
    async def perform() -> dict[str, object]:
        return {"done": True}

    return str(conf.propose("cancel_case", "R-1001", "Cancel R-1001.", perform)["confirmation_id"])


async def test_a_yes_after_the_proposal_unlocks_it() -> None:
    now = [0.0]
    conf = Confirmations(clock=lambda: now[0])
    pid = _pending(conf)
    now[0] = 2.0
    conf.caller_started_speaking()
    now[0] = 3.0
    conf.caller_spoke_final("Yes, please.")
    assert (await conf.take(pid, wait_s=0)).id == pid


async def test_the_late_tail_of_the_request_does_not_confirm() -> None:
    """ "Yes, please cancel it" was the *request*; its transcript arrives after the proposal."""
    now = [0.0]
    conf = Confirmations(clock=lambda: now[0])
    conf.caller_started_speaking()  # the request began before the proposal
    now[0] = 1.0
    pid = _pending(conf)
    now[0] = 1.5
    conf.caller_spoke_final("Yes, please cancel R-1001.")  # late, and reads as yes
    with pytest.raises(ToolError, match="not said yes"):
        await conf.take(pid, wait_s=0)


async def test_no_drops_the_action_and_says_so() -> None:
    now = [0.0]
    conf = Confirmations(clock=lambda: now[0])
    pid = _pending(conf)
    now[0] = 1.0
    conf.caller_started_speaking()
    conf.caller_spoke_final("いいえ、やめてください")
    with pytest.raises(ToolError, match="said no"):
        await conf.take(pid, wait_s=0)
    assert pid not in conf.pending


async def test_a_typed_yes_or_the_button_confirms() -> None:
    now = [0.0]
    conf = Confirmations(clock=lambda: now[0])
    pid = _pending(conf)
    now[0] = 1.0
    conf.caller_typed("yes")
    assert (await conf.take(pid, wait_s=0)).id == pid
    pid2 = _pending(conf)
    assert conf.button(pid2, "yes")
    assert (await conf.take(pid2, wait_s=0)).id == pid2
    assert not conf.button("cf-000000", "yes")


async def test_a_transcript_still_on_its_way_is_waited_for() -> None:
    """The caller spoke after the proposal; Gemini's transcript lands after the tool call."""
    import asyncio

    conf = Confirmations()
    pid = _pending(conf)
    await asyncio.sleep(0.01)
    conf.caller_started_speaking()

    async def late_transcript() -> None:
        await asyncio.sleep(0.2)
        conf.caller_spoke_final("はい")

    task = asyncio.create_task(late_transcript())
    assert (await conf.take(pid, wait_s=2)).id == pid
    await task


# ------------------------------------------------------------------ kaiwa.confirmation


def _watched(clock: Callable[[], float] = time.monotonic) -> tuple[Confirmations, list[str]]:
    """Confirmations whose published `kaiwa.confirmation` values are recorded."""
    seen: list[str] = []
    conf = Confirmations(clock=clock, on_change=seen.append)
    return conf, seen


def _propose(conf: Confirmations, kind: str, key: str, summary: str) -> str:
    async def perform() -> dict[str, object]:
        return {"done": True}

    return str(conf.propose(kind, key, summary, perform)["confirmation_id"])


def _shown(value: str) -> dict[str, Any]:
    """The published action ({} for "")."""
    return dict(json.loads(value)) if value else {}


async def test_a_proposal_is_published_and_a_performed_one_cleared() -> None:
    now = [0.0]
    conf, seen = _watched(clock=lambda: now[0])
    pid = _propose(conf, "set_quote", "R-1001", "Set the quote for case R-1001 to 50,000 yen.")
    assert seen == [
        f'{{"id":"{pid}","kind":"set_quote",'
        '"summary":"Set the quote for case R-1001 to 50,000 yen.","expires_in_s":120}'
    ]
    assert conf.button(pid, "yes")
    assert seen[-1] == ""  # answered: the page no longer asks
    await conf.take(pid, wait_s=0)
    assert seen == [seen[0], ""]  # performing it changed nothing shown: not republished


async def test_decline_shows_the_previous_one_and_then_nothing() -> None:
    now = [0.0]
    conf, seen = _watched(clock=lambda: now[0])
    first = _propose(conf, "cancel_case", "R-1001", "Cancel R-1001.")
    now[0] = 10.0
    second = _propose(conf, "set_quote", "R-1002", "Quote R-1002.")
    assert _shown(seen[-1])["id"] == second
    assert conf.button(second, "no")
    shown = _shown(seen[-1])
    assert shown["id"] == first and shown["expires_in_s"] == 110
    conf.caller_typed("いいえ、やめてください")  # a typed no answers the newest: the first
    assert seen[-1] == ""
    with pytest.raises(ToolError, match="said no"):
        await conf.take(first, wait_s=0)


async def test_a_replaced_proposal_is_replaced_on_the_page() -> None:
    conf, seen = _watched()
    old = _propose(conf, "set_quote", "R-1001", "Quote 40,000 yen.")
    new = _propose(conf, "set_quote", "R-1001", "Quote 45,000 yen.")
    assert [_shown(v).get("id") for v in seen] == [old, new]
    assert conf.button(old, "yes") is None  # the old id is gone
    assert _shown(seen[-1])["summary"] == "Quote 45,000 yen."


async def test_expiry_clears_the_attribute_by_itself() -> None:
    changed = asyncio.Event()
    seen: list[str] = []

    def on_change(value: str) -> None:
        seen.append(value)
        changed.set()

    conf = Confirmations(ttl_s=0.2, on_change=on_change)
    _propose(conf, "cancel_case", "R-1001", "Cancel R-1001.")
    assert seen and seen[-1]
    changed.clear()
    async with asyncio.timeout(3):  # no call on the object: its own timer clears it
        await changed.wait()
    assert seen[-1] == "" and conf.pending == {}


async def test_the_summary_is_bounded_and_the_call_end_clears_it() -> None:
    conf, seen = _watched()
    _propose(conf, "cancel_case", "R-1001", "x" * 5000)
    assert len(_shown(seen[-1])["summary"]) == MAX_SUMMARY_CHARS
    assert len(seen[-1].encode()) < 700
    conf.close()
    assert seen[-1] == "" and conf.pending == {}


async def test_a_spoken_yes_answers_it_and_the_page_hides_it() -> None:
    now = [0.0]
    conf, seen = _watched(clock=lambda: now[0])
    pid = _propose(conf, "cancel_case", "R-1001", "Cancel R-1001.")
    now[0] = 1.0
    conf.caller_started_speaking()
    conf.caller_spoke_final("hmm")  # unclear: still asked
    assert _shown(seen[-1])["id"] == pid
    conf.caller_spoke_final("Yes, go ahead.")
    assert seen[-1] == ""


def test_button_instructions_name_the_id_and_what_to_do() -> None:
    conf = Confirmations()
    pid = _pending(conf)
    action = conf.pending[pid]
    yes = button_instructions(action, "yes")
    assert f"confirm_action with confirmation_id {pid}" in yes and "Cancel R-1001." in yes
    no = button_instructions(action, "no")
    assert "Decline" in no and "do not call confirm_action" in no and pid in no
    # the instructions never read as the caller's own yes or no
    assert classify(yes) is None and classify(no) is None


async def test_the_publisher_sends_in_order_and_never_raises() -> None:
    sent: list[str] = []
    gate = asyncio.Event()

    async def publish(value: str) -> None:
        await gate.wait()
        if value == "boom":
            raise RuntimeError("room gone")
        sent.append(value)

    pub = AttributePublisher(publish)
    pub("a")
    await asyncio.sleep(0)  # the task is sending "a"
    pub("b")
    pub("c")  # overtakes "b": only the newest matters
    gate.set()
    await pub.wait()
    assert sent == ["a", "c"]
    pub("boom")
    await pub.wait()  # logged, not raised
    pub("")
    await pub.wait()
    assert sent == ["a", "c", ""]

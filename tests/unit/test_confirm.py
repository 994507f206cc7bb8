"""Confirmation means yes: only a final answer that began after the proposal and reads as
yes (Japanese or English), typed text, or the page's button unlocks the action; "no" drops
it; the late tail of the sentence that asked for the action does not count."""

from __future__ import annotations

import pytest
from livekit.agents import ToolError

from agent.tools.confirm import Confirmations, classify


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

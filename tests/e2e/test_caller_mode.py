"""Who is talking, end to end: an anonymous caller (open mode, kaiwa.role=caller) sees and
changes only their own verified case, masked; staff (a bearer key marked staff) see
everything and are named in the history; a client cannot make itself staff; and no phone
number or email reaches any log. Real livekit-server, worker, token servers and the fake.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from desk import Desk
from tests.fakes.gemini_live import FakeConversation, GeminiLiveFake
from tests.support.caller import Caller
from tests.support.responses import tool_output
from tests.support.stack import (
    ARTIFACTS,
    STAFF_IDENTITY,
    STAFF_KEY,
    LiveKitServer,
    TokenServer,
    Worker,
    staff_tokens_env,
    worker_env,
)

from .conftest import AGENT_NAME, fresh_conversation

PHONE = "090-8765-4321"
EMAIL = "sato.pii-check@example.com"


@pytest.fixture(scope="module")
async def staff_tokens(livekit: LiveKitServer, stack_dir: Path) -> AsyncIterator[TokenServer]:
    env = worker_env(livekit, {}, KAIWA_AGENT_NAME=AGENT_NAME, **staff_tokens_env())
    proc = TokenServer(env, stack_dir)
    await proc.start_ready()
    yield proc
    await proc.stop()


@pytest.fixture(scope="module")
def case_id(desk_db: Path) -> str:
    desk = Desk.open(desk_db)
    case = desk.create_case(
        customer_name="Sato Hanako", device_type="SSD", symptom="not detected", phone=PHONE,
        email=EMAIL,
    )  # fmt: skip
    desk.update_status(case.id, "diagnosing", actor="staff:setup")
    desk.set_quote(case.id, 40000, actor="staff:setup")
    return case.id


async def start_call(
    caller: Caller, gemini: GeminiLiveFake, *, bearer: str | None = None
) -> FakeConversation:
    joined = time.monotonic()
    caller.bearer = bearer
    await caller.join()
    await caller.wait_for_agent(timeout=20)
    conv = await fresh_conversation(gemini, since=joined, timeout=20)
    conv.auto = False
    await conv.wait_for_greeting_request(timeout=15)
    await conv.speak(text="Hello.", seconds=0.4)
    return conv


def text_of(response: dict[str, object]) -> str:
    return json.dumps(response, ensure_ascii=False)


def snapshot(desk_db: Path, case_id: str) -> tuple[object, ...]:
    c = Desk.open(desk_db).get_case(case_id)
    return (c.status, c.quote_yen, c.return_date, len(c.notes), len(c.history))


async def test_an_anonymous_caller_must_verify_and_sees_only_masked_data(
    token_server: TokenServer, worker: Worker, gemini: GeminiLiveFake, desk_db: Path, case_id: str
) -> None:
    before = snapshot(desk_db, case_id)
    caller = Caller(f"{token_server.url}/token")
    try:
        conv = await start_call(caller, gemini)
        assert "caller" in (conv.system_instruction or "")
        assert "find_cases" not in conv.tool_names and "update_status" not in conv.tool_names

        refused = await conv.call_tool("get_case", {"case_id": case_id})
        assert "verify" in text_of(refused) and PHONE not in text_of(refused)
        for digits in ("0000", "1111"):
            wrong = await conv.call_tool(
                "verify_caller", {"case_id": case_id, "phone_last4": digits}
            )
            assert "doesn't match" in text_of(wrong)
        # a case that doesn't exist is refused the same way (no probing for case ids)
        locked = await conv.call_tool("verify_caller", {"case_id": "R-9999", "phone_last4": "4321"})
        assert "locked" in text_of(locked)
        still = await conv.call_tool("verify_caller", {"case_id": case_id, "phone_last4": "4321"})
        assert "locked" in text_of(still)
        again = await conv.call_tool("get_case", {"case_id": case_id})
        assert "verify" in text_of(again) and "Sato" not in text_of(again)
        # a change outside a caller's rights: not offered, and refused if called anyway
        change = await conv.call_tool("update_status", {"case_id": case_id, "status": "approved"})
        assert "error" in change
        await conv.speak(text="I'm sorry.", seconds=0.4)
    finally:
        await caller.leave()
    assert snapshot(desk_db, case_id) == before

    caller = Caller(f"{token_server.url}/token")
    try:
        conv = await start_call(caller, gemini)
        ok = await conv.call_tool("verify_caller", {"case_id": case_id, "phone_last4": "4321"})
        assert tool_output(ok)["verified"] is True
        got = tool_output(await conv.call_tool("get_case", {"case_id": case_id}))
        assert got["id"] == case_id and got["phone"] == "***-****-4321"
        assert got["email"] == "s***@example.com"
        listing = await conv.call_tool("find_cases", {"name": "Sato"})
        assert "error" in listing and "Hanako" not in text_of(listing)
        await conv.speak(text="Here is your case.", seconds=0.4)
    finally:
        await caller.leave()
    assert snapshot(desk_db, case_id) == before


async def test_staff_see_everything_and_are_named_in_the_history(
    staff_tokens: TokenServer, worker: Worker, gemini: GeminiLiveFake, desk_db: Path
) -> None:
    caller = Caller(f"{staff_tokens.url}/token")
    try:
        conv = await start_call(caller, gemini, bearer=STAFF_KEY)
        assert "staff" in (conv.system_instruction or "") and "find_cases" in conv.tool_names
        created = tool_output(
            await conv.call_tool(
                "create_case",
                {
                    "customer_name": "Ito Jiro",
                    "device_type": "HDD",
                    "symptom": "clicks",
                    "phone": PHONE,
                    "email": EMAIL,
                },
            )
        )
        got = tool_output(await conv.call_tool("get_case", {"case_id": created["id"]}))
        assert got["phone"] == PHONE and got["email"] == EMAIL  # staff: unmasked
        await conv.call_tool("add_note", {"case_id": created["id"], "text": "called back"})
        await conv.speak(text="Done.", seconds=0.4)
    finally:
        await caller.leave()
    history = Desk.open(desk_db).get_case(str(created["id"])).history
    assert {h.changed_by for h in history} == {f"staff:{STAFF_IDENTITY}"}
    # the call carried a phone number and an email through tools, results and the screen:
    # none of it may be in any log (worker, job processes, token servers, livekit-server)
    logs = sorted(ARTIFACTS.glob("*.log"))
    assert logs
    for log in logs:
        text = log.read_text(encoding="utf-8", errors="replace")
        assert PHONE not in text and PHONE.replace("-", "") not in text, log
        assert EMAIL not in text, log


async def test_a_client_cannot_make_itself_staff(token_server: TokenServer) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        for body in (
            {"participant_attributes": {"kaiwa.role": "staff"}},
            {"room_config": {"agents": [{"agent_name": AGENT_NAME, "metadata": "{}"}]}},
        ):
            r = await client.post(f"{token_server.url}/token", json=body)
            assert r.status_code == 403, r.text
            assert r.json()["error"]

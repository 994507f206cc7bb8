"""The service-desk tools, called in-process as the framework calls them: arguments
validated against the declared schema, refusals as sentences, confirmations enforced."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from livekit.agents import ToolError

from agent.tools import camera, clock, confirm, desk, python_tools
from tests.support.tools_harness import FakeSession, call, settings_for, use_services


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "desk.sqlite3"
    use_services(settings_for(path, KAIWA_TIMEZONE="Pacific/Kiritimati", KAIWA_LAB_DELAY_S="0"))
    return path


def row(db: Path, case_id: str) -> tuple[str, int | None]:
    with sqlite3.connect(db) as conn:
        status, quote = conn.execute(
            "SELECT status, quote_yen FROM cases WHERE num = ?", (int(case_id[2:]),)
        ).fetchone()
    return status, quote


async def new_case(**over: str) -> str:
    args = {"customer_name": "山田 太郎", "device_type": "hard disk", "symptom": "clicks"}
    out = await call(desk.create_case, **(args | over))
    return str(out["id"])


def test_every_named_tool_is_offered() -> None:
    names = {t.info.name for t in python_tools()}
    assert names >= {
        "create_case", "find_cases", "get_case", "update_status", "add_note", "set_quote",
        "schedule_return", "cancel_case", "confirm_action", "get_current_time",
        "check_lab_progress", "show_case", "clear_screen",
    }  # fmt: skip


async def test_create_then_get_and_find(db: Path) -> None:
    out = await call(
        desk.create_case,
        customer_name="Yamada Taro",
        device_type="USB hard disk",
        symptom="not recognised",
        phone="090-1234-5678",
    )
    assert out["id"].startswith("R-") and out["status"] == "received" and out["device"] == "HDD"
    assert out["id"] in out["say"]
    assert row(db, out["id"]) == ("received", None)

    got = await call(desk.get_case, case_id=f"case {out['id'][2:]}")  # spoken form
    assert got["id"] == out["id"] and got["symptom"] == "not recognised"
    assert got["next_status"] == ["diagnosing", "cancelled"]

    by_name = await call(desk.find_cases, name="yamada")
    by_phone = await call(desk.find_cases, phone="5678")
    by_status = await call(desk.find_cases, status="Received")
    for found in (by_name, by_phone, by_status):
        assert found["count"] == 1 and found["cases"][0]["id"] == out["id"]
    assert (await call(desk.find_cases, name="Suzuki"))["count"] == 0


@pytest.mark.parametrize(
    ("tool", "args", "words"),
    [
        (desk.create_case, {"customer_name": "", "device_type": "HDD", "symptom": "x"}, "name"),
        (desk.create_case, {"customer_name": "A", "device_type": "toaster", "symptom": "x"},
         "device type"),
        (desk.create_case,
         {"customer_name": "A", "device_type": "SSD", "symptom": "x", "phone": "call me"},
         "phone number"),
        (desk.get_case, {"case_id": "banana"}, "case number"),
        (desk.get_case, {"case_id": "R-9999"}, "no case R-9999"),
        (desk.update_status, {"case_id": "R-1001", "status": "flying"}, "not a case status"),
        (desk.schedule_return, {"case_id": "R-1001", "date": "next week"}, "year-month-day"),
        (desk.set_quote, {"case_id": "R-1001", "amount_yen": "-5"}, "whole number of yen"),
        (desk.cancel_case, {"case_id": "R-1001", "reason": "  "}, "reason is empty"),
    ],
)  # fmt: skip
async def test_bad_arguments_become_sentences(
    db: Path, tool: object, args: dict[str, object], words: str
) -> None:
    await new_case()
    with pytest.raises(ToolError) as err:
        await call(tool, **args)
    assert words in err.value.message
    assert err.value.message.rstrip().endswith((".", "?")), err.value.message


async def test_status_update_and_note(db: Path) -> None:
    cid = await new_case()
    out = await call(desk.update_status, case_id=cid, status="診断中")
    assert out == {"id": cid, "status": "diagnosing", "previous": "received"}
    with pytest.raises(ToolError, match="it can move to"):
        await call(desk.update_status, case_id=cid, status="ready")
    with pytest.raises(ToolError, match="cancel_case"):
        await call(desk.update_status, case_id=cid, status="cancelled")
    assert row(db, cid)[0] == "diagnosing"
    assert (await call(desk.add_note, case_id=cid, text="Customer calls back Monday"))["notes"] == 1


async def test_schedule_uses_configured_time_zone(db: Path) -> None:
    cid = await new_case()
    today_there = dt.datetime.now(ZoneInfo("Pacific/Kiritimati")).date()  # UTC+14
    out = await call(desk.schedule_return, case_id=cid, date=today_there.isoformat(), kind="pickup")
    assert out["date"] == f"pickup on {today_there.isoformat()}"
    with pytest.raises(ToolError, match="in the past"):
        yesterday = today_there - dt.timedelta(days=1)
        await call(desk.schedule_return, case_id=cid, date=yesterday.isoformat())


async def test_current_time_is_in_configured_zone(db: Path) -> None:
    out = await call(clock.get_current_time)
    assert out["timezone"] == "Pacific/Kiritimati"
    assert out["iso"].endswith("+14:00")
    assert out["date"] == dt.datetime.now(ZoneInfo("Pacific/Kiritimati")).date().isoformat()


async def test_cancel_needs_the_callers_yes(db: Path) -> None:
    cid = await new_case()
    session = FakeSession()
    proposal = await call(desk.cancel_case, session, case_id=cid, reason="found a backup")
    assert proposal["needs_confirmation"] is True and cid in proposal["summary"]
    assert row(db, cid)[0] == "received"  # nothing changed

    # The model confirming on its own, before the caller answered: refused.
    with pytest.raises(ToolError, match="not said yes"):
        await call(desk.confirm_action, session, confirmation_id=proposal["confirmation_id"])
    assert row(db, cid)[0] == "received"

    # A made-up id, or the right id in another conversation: refused.
    session.caller_says("yes please")
    with pytest.raises(ToolError, match="no pending action"):
        await call(desk.confirm_action, session, confirmation_id="cf-000000")
    with pytest.raises(ToolError, match="no pending action"):
        await call(desk.confirm_action, confirmation_id=proposal["confirmation_id"])
    assert row(db, cid)[0] == "received"

    done = await call(desk.confirm_action, session, confirmation_id=proposal["confirmation_id"])
    assert done == {"id": cid, "status": "cancelled", "done": True}
    assert row(db, cid)[0] == "cancelled"
    # one use only
    with pytest.raises(ToolError, match="no pending action"):
        await call(desk.confirm_action, session, confirmation_id=proposal["confirmation_id"])


async def test_quote_confirmation_and_expiry(db: Path) -> None:
    cid = await new_case()
    await call(desk.update_status, case_id=cid, status="diagnosing")
    session = FakeSession()
    now = [1000.0]
    conf = session.userdata.confirmations
    conf.clock = lambda: now[0]

    first = await call(desk.set_quote, session, case_id=cid, amount_yen="55,000 yen")
    assert "55,000 yen" in first["summary"]
    now[0] += confirm.PENDING_TTL_S + 1
    session.caller_says("ok")
    with pytest.raises(ToolError, match="no pending action"):
        await call(desk.confirm_action, session, confirmation_id=first["confirmation_id"])
    assert row(db, cid) == ("diagnosing", None)

    second = await call(desk.set_quote, session, case_id=cid, amount_yen="¥60000")
    now[0] += 1
    session.caller_says("はい、お願いします")
    out = await call(desk.confirm_action, session, confirmation_id=second["confirmation_id"])
    assert out["quote"] == "60,000 yen" and row(db, cid) == ("quoted", 60000)


async def test_refusals_come_before_asking_the_caller(db: Path) -> None:
    cid = await new_case()
    with pytest.raises(ToolError, match="diagnosing or quoted"):
        await call(desk.set_quote, case_id=cid, amount_yen="1000")
    session = FakeSession()
    p = await call(desk.cancel_case, session, case_id=cid, reason="too expensive")
    session.caller_says("yes")
    await call(desk.confirm_action, session, confirmation_id=p["confirmation_id"])
    with pytest.raises(ToolError, match="can't be cancelled"):
        await call(desk.cancel_case, case_id=cid, reason="again")


async def test_lab_progress_reports_status(db: Path) -> None:
    cid = await new_case()
    out = await call(desk.check_lab_progress, case_id=cid)
    assert out["status"] == "received" and "queue" in out["lab"]


async def test_a_tool_run_outside_a_call_fails_with_a_sentence(db: Path) -> None:
    session = FakeSession()
    session.userdata = None  # type: ignore[assignment]
    with pytest.raises(ToolError, match="internal problem"):
        await call(desk.get_case, session, case_id="R-1001")


async def test_the_same_request_twice_in_one_call_opens_one_case(db: Path) -> None:
    session = FakeSession()
    args = {
        "customer_name": "Mori Ken",
        "device_type": "SSD",
        "symptom": "dead",
        "phone": "03-1234-5678",
    }
    first = await call(desk.create_case, session, **args)
    again = await call(desk.create_case, session, **args)
    assert again["id"] == first["id"] and again["already_open"] is True
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM cases").fetchone()[0] == 1
    other_call = await call(desk.create_case, FakeSession(), **args)
    assert other_call["id"] != first["id"]  # another call is another request


# ---------------------------------------------------------------- case operations


def history(db: Path, case_id: str) -> list[tuple[str, str, str | None]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT actor, action, new FROM history WHERE case_num = ? ORDER BY id",
            (int(case_id[2:]),),
        ).fetchall()


async def quoted_case(amount: int = 50_000) -> str:
    cid = await new_case()
    session = FakeSession()
    await call(desk.update_status, session, case_id=cid, status="diagnosing")
    proposal = await call(desk.set_quote, session, case_id=cid, amount_yen=str(amount))
    session.caller_says("yes")
    await call(desk.confirm_action, session, confirmation_id=proposal["confirmation_id"])
    return cid


def test_case_operation_tools_are_staff_only() -> None:
    from agent.tools.runtime import policy_of

    names = {t.info.name for t in python_tools()}
    assert names >= {"update_contact", "assign_technician", "reopen_case", "record_payment"}
    assert "attach_camera_photo" in names  # a photo by voice (a file: by hand, the console)
    for tool in (desk.update_contact, desk.assign_technician, desk.reopen_case,
                 desk.record_payment, camera.attach_camera_photo):  # fmt: skip
        assert policy_of(tool).roles == ("staff",)


async def test_callers_cannot_use_case_operations(db: Path) -> None:
    cid = await new_case()
    caller = FakeSession(role="caller")
    with pytest.raises(ToolError):
        await call(desk.update_contact, caller, case_id=cid, phone="0312345678")
    with pytest.raises(ToolError):
        await call(desk.record_payment, caller, case_id=cid, amount_yen="1000", method="cash")


async def test_update_contact_and_assign_by_voice(db: Path) -> None:
    cid = await new_case(phone="090-1234-5678")
    session = FakeSession(identity="alice")
    out = await call(desk.update_contact, session, case_id=cid, phone="080-1111-2222", email="")
    assert out == {"id": cid, "phone": "080-1111-2222", "saved": True}
    with pytest.raises(ToolError, match="new phone number or email"):
        await call(desk.update_contact, session, case_id=cid, phone="", email=" ")
    with pytest.raises(ToolError, match="email address given"):
        await call(desk.update_contact, session, case_id=cid, email="nope@")
    out = await call(desk.assign_technician, session, case_id=cid, technician="佐藤")
    assert out == {"id": cid, "technician": "佐藤", "saved": True}
    actions = [(a, n) for _, a, n in history(db, cid)]
    assert ("phone", "080-1111-2222") in actions and ("technician", "佐藤") in actions
    assert {actor for actor, a, _ in history(db, cid) if a in ("phone", "technician")} == {
        "staff:alice"
    }


async def test_reopen_needs_confirmation(db: Path) -> None:
    cid = await new_case()
    session = FakeSession()
    with pytest.raises(ToolError, match="still open"):
        await call(desk.reopen_case, session, case_id=cid, reason="x")
    proposal = await call(desk.cancel_case, session, case_id=cid, reason="by mistake")
    session.caller_says("yes")
    await call(desk.confirm_action, session, confirmation_id=proposal["confirmation_id"])
    proposal = await call(desk.reopen_case, session, case_id=cid, reason="cancelled by mistake")
    assert proposal["needs_confirmation"] is True and "back to 'received'" in proposal["summary"]
    assert row(db, cid)[0] == "cancelled"
    session.caller_says("yes, reopen it")
    done = await call(desk.confirm_action, session, confirmation_id=proposal["confirmation_id"])
    assert done == {"id": cid, "status": "received", "previous": "cancelled", "done": True}
    assert row(db, cid)[0] == "received"


async def test_record_payment_needs_confirmation_and_shows_balance(db: Path) -> None:
    cid = await quoted_case(50_000)
    session = FakeSession()
    with pytest.raises(ToolError, match="more than what is left"):
        await call(desk.record_payment, session, case_id=cid, amount_yen="60000", method="cash")
    with pytest.raises(ToolError, match="cash, card, bank transfer or other"):
        await call(desk.record_payment, session, case_id=cid, amount_yen="1000", method="beans")
    proposal = await call(
        desk.record_payment, session, case_id=cid, amount_yen="20,000 yen", method="card"
    )
    assert "30,000 yen will be left" in proposal["summary"]
    with pytest.raises(ToolError, match="not said yes"):
        await call(desk.confirm_action, session, confirmation_id=proposal["confirmation_id"])
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM payments").fetchone()[0] == 0
    session.caller_says("yes")
    done = await call(desk.confirm_action, session, confirmation_id=proposal["confirmation_id"])
    assert done == {"id": cid, "paid": "20,000 yen", "method": "card", "balance": "30,000 yen",
                    "done": True}  # fmt: skip
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT amount_yen, method FROM payments").fetchall() == [
            (20_000, "card")
        ]
    assert history(db, cid)[-1][1:] == ("payment", "20,000 yen by card")


async def test_record_payment_without_a_quote_is_refused(db: Path) -> None:
    cid = await new_case()
    with pytest.raises(ToolError, match="no quote yet"):
        await call(desk.record_payment, case_id=cid, amount_yen="1000", method="cash")

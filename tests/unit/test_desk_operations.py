"""The console's case operations on both backends: contact edits, technician, reopen,
payments against the quote, attached photos; each with history, idempotency and a
sentence for every refusal."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest

from desk import (
    AttachmentNotFound,
    Case,
    CaseNotFound,
    CaseStatus,
    Desk,
    DeskCancelled,
    IdempotencyKeyReused,
    InvalidInput,
    WriteGuard,
    WrongState,
    next_states,
)
from desk.validate import MAX_ATTACHMENT_BYTES
from tests.support.postgres import desk_target, postgres  # noqa: F401

S = CaseStatus
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0" + b"\x01" * 100


@pytest.fixture
def desk(desk_target: str) -> Iterator[Desk]:  # noqa: F811 (a fixture)
    """Every test here runs on SQLite and on PostgreSQL."""
    desk = Desk.open(desk_target)
    yield desk
    desk.close()


def new_case(desk: Desk, customer_name: str = "Tanaka") -> Case:
    return desk.create_case(
        customer_name=customer_name, device_type="HDD", symptom="clicks", phone="090-1234-5678"
    )


def advance_to(desk: Desk, case: Case, status: CaseStatus, quote: int = 30_000) -> Case:
    while case.status is not status:
        if case.status is S.DIAGNOSING:
            case = desk.set_quote(case.id, quote)
        else:
            case = desk.update_status(case.id, next_states(case.status)[0])
    return case


def last(case: Case, action: str) -> tuple[str, str | None, str | None]:
    entry = [h for h in case.history if h.action == action][-1]
    return entry.actor, entry.old, entry.new


# ----------------------------------------------------------------- contact


def test_update_contact_changes_phone_and_email_with_history(desk: Desk) -> None:
    case = new_case(desk)
    done = desk.update_contact(
        case.id, phone="080 9999 0000", email="Taro@Example.JP", actor="staff:alice"
    )
    assert done.phone == "080 9999 0000" and done.email == "taro@example.jp"
    assert last(done, "phone") == ("staff:alice", "090-1234-5678", "080 9999 0000")
    assert last(done, "email") == ("staff:alice", None, "taro@example.jp")
    # the lookup key follows the new number; the old one no longer finds it
    assert [c.id for c in desk.find_cases(phone="0000")] == [case.id]
    assert desk.find_cases(phone="5678") == []
    # None keeps a field; a blank removes it
    kept = desk.update_contact(case.id, email="")
    assert kept.phone == "080 9999 0000" and kept.email is None
    assert last(kept, "email") == ("agent", "taro@example.jp", None)


def test_update_contact_refusals_are_sentences(desk: Desk) -> None:
    case = new_case(desk)
    with pytest.raises(InvalidInput, match="phone number given contains letters") as err:
        desk.update_contact(case.id, phone="call me")
    assert err.value.field == "phone"
    with pytest.raises(InvalidInput, match="email address given"):
        desk.update_contact(case.id, email="taro@")
    with pytest.raises(InvalidInput, match="new phone number or email"):
        desk.update_contact(case.id)
    with pytest.raises(CaseNotFound):
        desk.update_contact("R-9999", phone="0312345678")
    assert desk.get_case(case.id).phone == "090-1234-5678"


def test_update_contact_same_values_writes_no_history(desk: Desk) -> None:
    case = new_case(desk)
    again = desk.update_contact(case.id, phone="090-1234-5678")
    assert len(again.history) == len(case.history)


# --------------------------------------------------------------- technician


def test_assign_technician_and_reassign(desk: Desk) -> None:
    case = new_case(desk)
    one = desk.assign_technician(case.id, "  佐藤  ", actor="staff:bob")
    assert one.technician == "佐藤"
    assert last(one, "technician") == ("staff:bob", None, "佐藤")
    two = desk.assign_technician(case.id, "Suzuki")
    assert two.technician == "Suzuki" and last(two, "technician")[1:] == ("佐藤", "Suzuki")
    assert desk.get_case(case.id).to_dict()["technician"] == "Suzuki"


def test_assign_technician_refusals(desk: Desk) -> None:
    case = new_case(desk)
    with pytest.raises(InvalidInput, match="technician's name is missing"):
        desk.assign_technician(case.id, " ")
    desk.cancel_case(case.id, reason="customer withdrew")
    with pytest.raises(WrongState, match="is 'cancelled', so no technician can be assigned"):
        desk.assign_technician(case.id, "Suzuki")


# ------------------------------------------------------------------- reopen


def test_reopen_returned_goes_back_to_ready(desk: Desk) -> None:
    case = advance_to(desk, new_case(desk), S.RETURNED)
    done = desk.reopen_case(case.id, reason="files missing", actor="staff:alice")
    assert done.status is S.READY
    assert last(done, "status") == ("staff:alice", "returned", "ready")
    assert done.notes[-1].text == "Reopened (returned → ready): files missing"


def test_reopen_cancelled_goes_back_to_where_it_was(desk: Desk) -> None:
    case = advance_to(desk, new_case(desk), S.QUOTED)
    desk.cancel_case(case.id, reason="too expensive")
    done = desk.reopen_case(case.id, reason="customer changed their mind")
    assert done.status is S.QUOTED and done.quote_yen == 30_000
    early = new_case(desk, customer_name="Sato")
    desk.cancel_case(early.id, reason="duplicate")
    assert desk.reopen_case(early.id, reason="not a duplicate").status is S.RECEIVED


def test_reopen_refuses_open_cases(desk: Desk) -> None:
    case = new_case(desk)
    with pytest.raises(WrongState, match="still open; only a returned or cancelled case"):
        desk.reopen_case(case.id, reason="why not")
    with pytest.raises(InvalidInput, match="reason for reopening is empty"):
        desk.reopen_case(case.id, reason="")


def test_reopen_is_idempotent(desk: Desk) -> None:
    case = advance_to(desk, new_case(desk), S.RETURNED)
    first = desk.reopen_case(case.id, reason="again", idempotency_key="room/call-1")
    again = desk.reopen_case(case.id, reason="again", idempotency_key="room/call-1")
    assert again.replayed and again.status is S.READY and again.history == first.history
    assert len(desk.get_case(case.id).notes) == len(first.notes)


# ----------------------------------------------------------------- payments


def test_payments_reduce_the_balance(desk: Desk) -> None:
    case = advance_to(desk, new_case(desk), S.APPROVED, quote=50_000)
    assert case.balance_yen == 50_000 and case.paid_yen == 0
    one = desk.record_payment(case.id, "20,000円", method="現金", actor="staff:alice")
    assert one.paid_yen == 20_000 and one.balance_yen == 30_000
    assert one.payments[-1].method == "cash" and one.payments[-1].actor == "staff:alice"
    assert last(one, "payment") == ("staff:alice", None, "20,000 yen by cash")
    two = desk.record_payment(case.id, 30_000, method="bank transfer")
    assert two.balance_yen == 0 and [p.method for p in two.payments] == ["cash", "bank_transfer"]
    data = desk.get_case(case.id).to_dict()
    assert data["paid_yen"] == 50_000 and data["balance_yen"] == 0 and len(data["payments"]) == 2
    with pytest.raises(WrongState, match="already paid in full"):
        desk.record_payment(case.id, 1, method="cash")


def test_payment_refusals_are_sentences(desk: Desk) -> None:
    case = new_case(desk)
    with pytest.raises(WrongState, match="has no quote yet, so there is nothing to pay"):
        desk.record_payment(case.id, 1_000, method="cash")
    case = advance_to(desk, case, S.QUOTED, quote=10_000)
    with pytest.raises(WrongState, match=r"12,000 yen is more than what is left.*10,000 yen"):
        desk.record_payment(case.id, 12_000, method="card")
    with pytest.raises(InvalidInput, match="above zero") as err:
        desk.record_payment(case.id, 0, method="card")
    assert err.value.field == "amount_yen"
    with pytest.raises(InvalidInput, match="cash, card, bank transfer or other"):
        desk.record_payment(case.id, 1_000, method="bitcoin")
    desk.record_payment(case.id, 4_000, method="card")
    # the quote can't drop below what was paid
    with pytest.raises(WrongState, match="4,000 yen has already been paid"):
        desk.set_quote(case.id, 3_000)
    assert desk.set_quote(case.id, 8_000).balance_yen == 4_000
    desk.cancel_case(case.id, reason="gave up")
    with pytest.raises(WrongState, match="was cancelled, so no payment"):
        desk.record_payment(case.id, 1_000, method="cash")


def test_payment_idempotency_key(desk: Desk) -> None:
    case = advance_to(desk, new_case(desk), S.QUOTED, quote=10_000)
    desk.record_payment(case.id, 3_000, method="cash", idempotency_key="k1")
    again = desk.record_payment(case.id, 3_000, method="cash", idempotency_key="k1")
    assert again.replayed and again.paid_yen == 3_000
    assert desk.get_case(case.id).paid_yen == 3_000
    with pytest.raises(IdempotencyKeyReused):
        desk.record_payment(case.id, 4_000, method="cash", idempotency_key="k1")


def test_cancelled_guard_records_no_payment(desk: Desk) -> None:
    case = advance_to(desk, new_case(desk), S.QUOTED, quote=10_000)
    guard = WriteGuard()
    guard.cancel()
    with pytest.raises(DeskCancelled):
        desk.record_payment(case.id, 3_000, method="cash", guard=guard)
    assert desk.get_case(case.id).payments == ()


# -------------------------------------------------------------- attachments


def test_attach_a_photo_and_read_it_back(desk: Desk) -> None:
    case = new_case(desk)
    done = desk.attach_file(
        case.id, name="C:\\photos\\drive front.png", data=PNG, actor="staff:alice"
    )
    (att,) = done.attachments
    assert att.name == "drive front.png" and att.content_type == "image/png"
    assert att.size == len(PNG) and att.sha256 == hashlib.sha256(PNG).hexdigest()
    assert last(done, "attachment") == (
        "staff:alice",
        None,
        f"drive front.png (image/png, {len(PNG)} bytes)",
    )
    meta, data = desk.get_attachment(case.id, att.id)
    assert meta == att and data == PNG
    # closed cases still take photos (like notes)
    desk.cancel_case(case.id, reason="x")
    second = desk.attach_file(case.id, name="label.jpg", data=JPEG)
    assert [a.content_type for a in second.attachments] == ["image/png", "image/jpeg"]


def test_attachment_refusals(desk: Desk) -> None:
    case = new_case(desk)
    with pytest.raises(InvalidInput, match="Only photos can be attached"):
        desk.attach_file(case.id, name="notes.txt", data=b"hello")
    with pytest.raises(InvalidInput, match="file is empty"):
        desk.attach_file(case.id, name="a.png", data=b"")
    with pytest.raises(InvalidInput, match="larger than 10 MB"):
        desk.attach_file(case.id, name="a.png", data=PNG + b"\0" * MAX_ATTACHMENT_BYTES)
    with pytest.raises(InvalidInput, match="no name"):
        desk.attach_file(case.id, name=" / ", data=PNG)
    with pytest.raises(AttachmentNotFound, match=f"no such file attached to {case.id}"):
        desk.get_attachment(case.id, 12345)
    with pytest.raises(CaseNotFound):
        desk.get_attachment("R-9999", 1)
    assert desk.get_case(case.id).attachments == ()


def test_attachment_replay_writes_once(desk: Desk) -> None:
    case = new_case(desk)
    desk.attach_file(case.id, name="a.png", data=PNG, idempotency_key="upload-1")
    again = desk.attach_file(case.id, name="a.png", data=PNG, idempotency_key="upload-1")
    assert again.replayed and len(desk.get_case(case.id).attachments) == 1

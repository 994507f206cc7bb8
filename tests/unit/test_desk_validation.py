"""Validation refusals carry sentences the voice model can say to the caller."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from desk import Desk, DeskError, InvalidInput


@pytest.fixture
def desk(tmp_path: Path) -> Desk:
    return Desk.open(tmp_path / "desk.sqlite3")


def create(desk: Desk, **overrides: Any) -> None:
    fields: dict[str, Any] = {"customer_name": "Tanaka", "device_type": "HDD", "symptom": "x"}
    desk.create_case(**(fields | overrides))


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"phone": "12"}, "phone",
         "The phone number given is too short; please ask for the full number."),
        ({"phone": "090-1234-5678-9999-12"}, "phone",
         "The phone number given has too many digits; please ask for it again."),
        ({"phone": "090 one two"}, "phone",
         "The phone number given contains letters; please ask for just the digits."),
        ({"email": "tanaka at example"}, "email",
         "The email address given doesn't look complete; please ask for it again, "
         "spelling out the part after the @."),
        ({"customer_name": "  "}, "customer_name",
         "The customer's name is missing; please ask for it."),
        ({"customer_name": "x" * 101}, "customer_name",
         "That name is too long; please give a shorter form."),
        ({"symptom": ""}, "symptom",
         "The symptom description is empty; please ask what to record."),
        ({"device_type": "toaster"}, "device_type", None),
        ({"actor": ""}, "actor", "The actor name must be 1 to 100 characters."),
    ],
)  # fmt: skip
def test_create_refusals(
    desk: Desk, overrides: dict[str, Any], field: str, message: str | None
) -> None:
    with pytest.raises(InvalidInput) as err:
        create(desk, **overrides)
    assert err.value.field == field
    if message is not None:
        assert str(err.value) == message
    assert desk.list_cases() == []  # nothing half-written


def test_inputs_are_cleaned(desk: Desk) -> None:
    case = desk.create_case(
        customer_name="  ﾀﾅｶ   ﾊﾅｺ ",
        phone="０９０－１２３４－５６７８",
        email=" Tanaka@Example.JP ",
        device_type="ハードディスク",
        symptom=" makes a\nclicking noise ",
    )
    assert case.customer_name == "タナカ ハナコ"
    assert case.phone == "090-1234-5678"
    assert case.email == "tanaka@example.jp"
    assert case.symptom == "makes a clicking noise"
    # Optional contact fields may be empty.
    assert desk.create_case(customer_name="A", phone="", email=" ", device_type="sd",
                            symptom="x").phone is None  # fmt: skip


@pytest.mark.parametrize("amount", [50_000, 50_000.0, "50,000", "¥50000", "５００００円"])
def test_quote_amount_forms(desk: Desk, amount: Any) -> None:
    create(desk)
    desk.update_status("R-1001", "diagnosing")
    assert desk.set_quote("R-1001", amount).quote_yen == 50_000


@pytest.mark.parametrize("amount", [-1, 12.5, "a lot", True, 1_000_000_000])
def test_bad_quote_amounts(desk: Desk, amount: Any) -> None:
    create(desk)
    desk.update_status("R-1001", "diagnosing")
    with pytest.raises(InvalidInput, match="whole number of yen from 0 to 100,000,000"):
        desk.set_quote("R-1001", amount)


def test_date_and_kind_refusals(desk: Desk) -> None:
    create(desk)
    yesterday = dt.date.today() - dt.timedelta(days=1)
    with pytest.raises(InvalidInput, match="is in the past; please pick today or a later date"):
        desk.schedule_return("R-1001", yesterday)
    with pytest.raises(InvalidInput, match="couldn't read the date 'next Tuesday'"):
        desk.schedule_return("R-1001", "next Tuesday")
    with pytest.raises(InvalidInput, match=r"'return' .* or 'pickup'"):
        desk.schedule_return("R-1001", dt.date.today(), kind="courier")


def test_note_and_reason_required(desk: Desk) -> None:
    create(desk)
    with pytest.raises(InvalidInput, match="The note is empty"):
        desk.add_note("R-1001", "   ")
    with pytest.raises(InvalidInput, match="cancellation reason is empty"):
        desk.cancel_case("R-1001", reason="")
    with pytest.raises(InvalidInput, match="positive whole number"):
        desk.list_cases(limit=0)


@pytest.mark.parametrize(
    ("call", "secret"),
    [
        (lambda d: create(d, phone="090-1234"), "1234"),
        (lambda d: create(d, phone="090-1234-5678-9999-12"), "5678"),
        (lambda d: create(d, phone="090-12three4-5678"), "5678"),
        (lambda d: create(d, email="hanako.tanaka@example"), "hanako"),
        (lambda d: d.get_case("090-1234-5678"), "5678"),  # a phone number given as case id
        (lambda d: d.add_note("tanaka@example.jp", "x"), "tanaka"),
    ],
)  # fmt: skip
def test_refusals_do_not_repeat_personal_data(desk: Desk, call: Any, secret: str) -> None:
    with pytest.raises(DeskError) as err:
        call(desk)
    assert secret not in str(err.value)
    assert str(err.value).endswith(".")

"""Status lifecycle: every legal step, cancellation, refusals and their spoken messages."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from desk import (
    Case,
    CaseStatus,
    Desk,
    IllegalTransition,
    WrongState,
    next_states,
)
from tests.support.postgres import desk_target, postgres  # noqa: F401

S = CaseStatus
FUTURE = dt.date.today() + dt.timedelta(days=7)


@pytest.fixture
def desk(desk_target: str) -> Iterator[Desk]:  # noqa: F811 (a fixture)
    """Every test here runs on SQLite and on PostgreSQL."""
    desk = Desk.open(desk_target)
    yield desk
    desk.close()


def new_case(desk: Desk) -> Case:
    return desk.create_case(customer_name="Tanaka", device_type="HDD", symptom="clicks")


def advance_to(desk: Desk, case: Case, status: CaseStatus) -> Case:
    """Walk the happy path up to ``status`` (quoting on the way, as staff would)."""
    while case.status is not status:
        if case.status is S.DIAGNOSING:
            case = desk.set_quote(case.id, 30_000)
        else:
            case = desk.update_status(case.id, next_states(case.status)[0])
    return case


def test_transition_table() -> None:
    assert next_states(S.RECEIVED) == (S.DIAGNOSING, S.CANCELLED)
    assert next_states(S.READY) == (S.RETURNED, S.CANCELLED)
    assert next_states(S.RETURNED) == ()
    assert next_states(S.CANCELLED) == ()


def test_full_happy_path_records_each_step(desk: Desk) -> None:
    case = new_case(desk)
    assert case.id == "R-1001" and case.status is S.RECEIVED
    case = desk.update_status(case.id, "diagnosing")
    case = desk.set_quote(case.id, 45_000)
    assert case.status is S.QUOTED and case.quote_yen == 45_000
    for status in (S.APPROVED, S.RECOVERING, S.READY, S.RETURNED):
        case = desk.update_status(case.id, status, actor="staff")
        assert case.status is status
    steps = [(h.old, h.new) for h in case.history if h.action == "status"]
    assert steps == [
        ("received", "diagnosing"),
        ("diagnosing", "quoted"),
        ("quoted", "approved"),
        ("approved", "recovering"),
        ("recovering", "ready"),
        ("ready", "returned"),
    ]


@pytest.mark.parametrize("status", [s for s in S if s.is_open])
def test_cancel_from_every_open_state(desk: Desk, status: CaseStatus) -> None:
    case = advance_to(desk, new_case(desk), status)
    cancelled = desk.cancel_case(case.id, reason="customer found a backup", actor="op")
    assert cancelled.status is S.CANCELLED
    assert cancelled.notes[-1].text == "Cancelled: customer found a backup"
    assert cancelled.history[-2].action == "status"
    assert cancelled.history[-2].new == "cancelled"


@pytest.mark.parametrize("status", [S.RETURNED, S.CANCELLED])
def test_final_states_refuse_everything(desk: Desk, status: CaseStatus) -> None:
    case = new_case(desk)
    if status is S.CANCELLED:
        case = desk.cancel_case(case.id, reason="no longer needed")
    else:
        case = advance_to(desk, case, status)
    with pytest.raises(IllegalTransition) as err:
        desk.cancel_case(case.id, reason="again")
    assert err.value.allowed == ()
    assert (
        str(err.value)
        == f"{case.id} is '{status}', which is final; its status can't change any more."
    )
    with pytest.raises(WrongState, match="no return or pickup"):
        desk.schedule_return(case.id, FUTURE)
    # Notes stay possible on closed cases.
    assert desk.add_note(case.id, "customer called to say thanks").notes


@pytest.mark.parametrize(
    ("start", "target"),
    [
        (S.RECEIVED, S.APPROVED),  # skipping ahead
        (S.RECEIVED, S.RETURNED),
        (S.QUOTED, S.DIAGNOSING),  # going back
        (S.RECOVERING, S.RECOVERING),  # staying put
        (S.READY, S.RECEIVED),
    ],
)
def test_illegal_transitions_name_allowed_states(
    desk: Desk, start: CaseStatus, target: CaseStatus
) -> None:
    case = advance_to(desk, new_case(desk), start)
    before = desk.get_case(case.id)
    with pytest.raises(IllegalTransition) as err:
        desk.update_status(case.id, target)
    allowed = next_states(start)
    assert err.value.allowed == allowed
    assert err.value.target == target
    assert str(err.value) == f"{case.id} is '{start}'; it can move to: {allowed[0]} or cancelled."
    assert desk.get_case(case.id) == before  # nothing written, not even history


def test_spec_example_message(desk: Desk) -> None:
    case = new_case(desk)
    with pytest.raises(IllegalTransition) as err:
        desk.update_status(case.id, "ready")
    assert str(err.value) == "R-1001 is 'received'; it can move to: diagnosing or cancelled."


def test_quote_rules(desk: Desk) -> None:
    case = new_case(desk)
    with pytest.raises(WrongState, match="only be set while it is diagnosing or quoted"):
        desk.set_quote(case.id, 10_000)
    desk.update_status(case.id, "diagnosing")
    with pytest.raises(WrongState, match="has no quote yet"):
        desk.update_status(case.id, "quoted")
    case = desk.set_quote(case.id, 10_000)
    case = desk.set_quote(case.id, 12_000)  # revision while quoted keeps the status
    assert (case.status, case.quote_yen) == (S.QUOTED, 12_000)
    quotes = [(h.old, h.new) for h in case.history if h.action == "quote_yen"]
    assert quotes == [(None, "10000"), ("10000", "12000")]
    desk.update_status(case.id, "approved")
    with pytest.raises(WrongState, match="'approved'"):
        desk.set_quote(case.id, 1)


def test_schedule_return_and_pickup(desk: Desk) -> None:
    case = advance_to(desk, new_case(desk), S.READY)
    case = desk.schedule_return(case.id, FUTURE)
    assert (case.return_date, case.return_kind) == (FUTURE, "return")
    later = FUTURE + dt.timedelta(days=1)
    case = desk.schedule_return(case.id, later.isoformat(), kind="pickup", actor="op")
    assert (case.return_date, case.return_kind) == (later, "pickup")
    assert case.summary()["date"] == f"pickup on {later.isoformat()}"
    changes = [(h.action, h.old, h.new) for h in case.history if h.action.startswith("return")]
    assert changes == [
        ("return_date", None, FUTURE.isoformat()),
        ("return_kind", None, "return"),
        ("return_date", FUTURE.isoformat(), later.isoformat()),
        ("return_kind", "return", "pickup"),
    ]

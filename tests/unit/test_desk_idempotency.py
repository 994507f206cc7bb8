"""Exactly-once writes: idempotency keys, and duplicate creates within one call."""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
from collections.abc import Callable, Iterator
from multiprocessing.synchronize import Barrier
from typing import Any

import pytest

from desk import Case, CaseStatus, Desk, IdempotencyKeyReused, IllegalTransition, InvalidInput
from tests.support.postgres import desk_target, postgres  # noqa: F401

CTX = mp.get_context("spawn")
FUTURE = dt.date.today() + dt.timedelta(days=3)


@pytest.fixture
def desk(desk_target: str) -> Iterator[Desk]:  # noqa: F811 (a fixture)
    """Every test here runs on SQLite and on PostgreSQL."""
    desk = Desk.open(desk_target)
    yield desk
    desk.close()


def new_case(desk: Desk, **overrides: Any) -> Case:
    fields: dict[str, Any] = {"customer_name": "Tanaka", "device_type": "HDD", "symptom": "x"}
    return desk.create_case(**(fields | overrides))


def diagnosing(desk: Desk) -> Case:
    return desk.update_status(new_case(desk).id, "diagnosing")


def count_rows(desk: Desk) -> tuple[int, int, int]:
    def run(tx: Any) -> tuple[int, int, int]:
        return tuple(
            tx.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
            for t in ("cases", "notes", "history")
        )

    return desk.store.read(run)


# Every write, called on a case in 'diagnosing': (desk, case_id, key) -> Case.
WRITES: dict[str, Callable[[Desk, str, str], Case]] = {
    "create_case": lambda d, cid, key: new_case(d, phone="090-1111-2222", idempotency_key=key),
    "update_status": lambda d, cid, key: d.update_status(cid, "cancelled", idempotency_key=key),
    "cancel_case": lambda d, cid, key: d.cancel_case(cid, reason="too dear", idempotency_key=key),
    "add_note": lambda d, cid, key: d.add_note(cid, "called back", idempotency_key=key),
    "set_quote": lambda d, cid, key: d.set_quote(cid, 40_000, idempotency_key=key),
    "schedule_return": lambda d, cid, key: d.schedule_return(
        cid, FUTURE, kind="pickup", idempotency_key=key
    ),
}


@pytest.mark.parametrize("operation", list(WRITES))
def test_repeated_key_returns_first_result_without_writing(desk: Desk, operation: str) -> None:
    case_id = diagnosing(desk).id
    write = WRITES[operation]
    first = write(desk, case_id, "room-1/call-7")
    assert not first.replayed
    counts = count_rows(desk)

    again = write(desk, case_id, "room-1/call-7")
    assert again.replayed and not again.existing
    assert count_rows(desk) == counts  # nothing written the second time
    assert again.to_dict() == first.to_dict()  # the very same answer

    if operation in ("create_case", "add_note"):  # repeatable: a new key is a new request
        assert not write(desk, case_id, "room-1/call-8").replayed
        assert count_rows(desk) != counts


def test_replay_is_the_first_result_even_after_later_changes(desk: Desk) -> None:
    case = diagnosing(desk)
    first = desk.set_quote(case.id, 30_000, idempotency_key="k1")
    desk.set_quote(case.id, 35_000, idempotency_key="k2")
    again = desk.set_quote(case.id, 30_000, idempotency_key="k1")
    assert again.replayed and again.quote_yen == 30_000 and again.to_dict() == first.to_dict()
    assert desk.get_case(case.id).quote_yen == 35_000  # the replay changed nothing


@pytest.mark.parametrize(
    "reuse",
    [
        lambda d, cid: d.add_note(cid, "called back", idempotency_key="k"),  # other operation
        lambda d, cid: d.set_quote(cid, 45_000, idempotency_key="k"),  # other amount
        lambda d, cid: d.set_quote(cid, 40_000, actor="staff:bob", idempotency_key="k"),
        lambda d, cid: d.set_quote(new_case(d).id, 40_000, idempotency_key="k"),  # other case
    ],
)
def test_key_reused_for_a_different_change_is_refused(
    desk: Desk, reuse: Callable[[Desk, str], Case]
) -> None:
    case_id = diagnosing(desk).id
    desk.set_quote(case_id, 40_000, idempotency_key="k")
    with pytest.raises(IdempotencyKeyReused) as err:
        reuse(desk, case_id)
    assert str(err.value) == (
        "That request was already used for a different change, so this change was not made; "
        "nothing was changed."
    )
    assert err.value.operation == "set_quote"
    case = desk.get_case(case_id)
    assert case.quote_yen == 40_000 and case.notes == ()


def test_a_refused_write_does_not_use_up_its_key(desk: Desk) -> None:
    case = new_case(desk)
    with pytest.raises(IllegalTransition):
        desk.update_status(case.id, "ready", idempotency_key="k")
    # Nothing was stored for "k": the same key can carry the (corrected) request.
    assert not desk.update_status(case.id, "diagnosing", idempotency_key="k").replayed


def test_bad_keys_are_refused(desk: Desk) -> None:
    for bad in ("", "   ", "x" * 501):
        with pytest.raises(InvalidInput, match="request id"):
            new_case(desk, idempotency_key=bad)
    assert desk.list_cases() == []


def test_old_keys_are_forgotten(desk: Desk) -> None:
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    clocked = Desk(desk.store, clock=lambda: now)
    case = clocked.create_case(customer_name="A", device_type="sd", symptom="x",
                               idempotency_key="old")  # fmt: skip
    now += dt.timedelta(days=8)  # the next keyed write prunes keys older than 7 days
    clocked.add_note(case.id, "later", idempotency_key="new")
    again = clocked.create_case(customer_name="A", device_type="sd", symptom="x",
                                idempotency_key="old")  # fmt: skip
    assert not again.replayed and again.id != case.id


def _same_key_note(path: str, case_id: str, start: Barrier, results: Any) -> None:
    desk = Desk.open(path)
    start.wait(timeout=30)
    case = desk.add_note(case_id, "only once", actor="staff:alice", idempotency_key="room/c1")
    results.put(case.replayed)


def test_same_key_from_several_processes_writes_once(desk: Desk) -> None:
    path = desk.store.target
    case = new_case(desk)
    workers = 4
    start, results = CTX.Barrier(workers), CTX.Queue()
    procs = [
        CTX.Process(target=_same_key_note, args=(path, case.id, start, results))
        for _ in range(workers)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0] * workers
    replayed = sorted(results.get(timeout=5) for _ in range(workers))
    assert replayed == [False] + [True] * (workers - 1)
    assert [n.text for n in desk.get_case(case.id).notes] == ["only once"]


# ------------------------------------------------- duplicate create in one call


def test_same_call_same_customer_and_device_returns_the_existing_case(desk: Desk) -> None:
    first = new_case(
        desk, customer_name="タナカ ハナコ", phone="090-1234-5678", call_scope="room-a"
    )
    again = new_case(
        desk, customer_name="たなか はなこ", phone="+81 90 1234 5678", call_scope="room-a"
    )
    assert again.existing and not again.replayed and again.id == first.id
    assert len(desk.list_cases()) == 1
    # The same customer without a phone this time still matches.
    assert new_case(desk, customer_name="Tanaka Hanako", call_scope="room-a").id == first.id


@pytest.mark.parametrize(
    "overrides",
    [
        {"call_scope": "room-b"},  # another call
        {"call_scope": None},  # no scope: no check
        {"device_type": "SSD"},  # another device
        {"customer_name": "Sato Hanako"},  # another customer
        {"phone": "080-9999-0000"},  # same name, different phone: another customer
        {"dedupe_window_s": 0},  # check turned off
    ],
)
def test_a_different_create_is_not_a_duplicate(desk: Desk, overrides: dict[str, Any]) -> None:
    first = new_case(desk, customer_name="Tanaka Hanako", phone="090-1234-5678",
                     call_scope="room-a")  # fmt: skip
    fields: dict[str, Any] = {"customer_name": "Tanaka Hanako", "phone": "090-1234-5678",
                              "call_scope": "room-a"}  # fmt: skip
    other = new_case(desk, **(fields | overrides))
    assert not other.existing and other.id != first.id


def test_duplicate_window_and_cancelled_cases(desk: Desk) -> None:
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    clocked = Desk(desk.store, clock=lambda: now)
    first = clocked.create_case(customer_name="Ito", device_type="usb", symptom="x",
                                call_scope="room")  # fmt: skip
    now += dt.timedelta(seconds=599)
    again = clocked.create_case(customer_name="Ito", device_type="usb", symptom="y",
                                call_scope="room")  # fmt: skip
    assert again.existing and again.id == first.id and again.symptom == "x"
    now += dt.timedelta(seconds=2)  # 601 s after the first: outside the default window
    later = clocked.create_case(customer_name="Ito", device_type="usb", symptom="z",
                                call_scope="room")  # fmt: skip
    assert not later.existing
    clocked.cancel_case(later.id, reason="opened by mistake")
    fresh = clocked.create_case(customer_name="Ito", device_type="usb", symptom="z",
                                call_scope="room", dedupe_window_s=3600)  # fmt: skip
    # The cancelled one doesn't count; the first (within the hour) does.
    assert fresh.existing and fresh.id == first.id


def test_replay_of_a_duplicate_keeps_saying_existing(desk: Desk) -> None:
    first = new_case(desk, call_scope="room", idempotency_key="room/1")
    dup = new_case(desk, call_scope="room", idempotency_key="room/2")
    assert dup.existing and dup.id == first.id
    again = new_case(desk, call_scope="room", idempotency_key="room/2")
    assert again.replayed and again.existing and again.id == first.id
    assert [c.status for c in desk.list_cases()] == [CaseStatus.RECEIVED]

"""Cancellable writes: a WriteGuard stops a write that waits or is about to commit."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from desk import Case, Desk, DeskCancelled, WriteGuard
from desk.db import SqliteStore
from tests.support.postgres import desk_target, postgres  # noqa: F401


@pytest.fixture
def desk(desk_target: str) -> Iterator[Desk]:  # noqa: F811 (a fixture)
    """Every test here runs on SQLite and on PostgreSQL."""
    desk = Desk.open(desk_target)
    yield desk
    desk.close()


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=2) as executor:
        yield executor


def new_case(desk: Desk) -> Case:
    return desk.create_case(customer_name="Tanaka", device_type="HDD", symptom="x")


@contextlib.contextmanager
def write_lock_held(desk: Desk) -> Iterator[None]:
    """Another writer holds the locks the desk's writes need (every case row, creates)."""
    if isinstance(desk.store, SqliteStore):
        conn = sqlite3.connect(desk.store.path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    import psycopg

    from desk.pg import LOCKS, PostgresStore

    assert isinstance(desk.store, PostgresStore)
    with psycopg.connect(desk.store.url) as pg:  # a transaction until the block ends
        pg.execute("SELECT num FROM cases FOR UPDATE")
        pg.execute(
            "SELECT pg_advisory_xact_lock(hashtext(current_schema()), %s)", (LOCKS["cases"],)
        )
        yield
        pg.rollback()


def wait_running(future: Future[Any], seconds: float = 0.3) -> None:
    """Give the write time to reach its lock wait, and check it is still waiting."""
    time.sleep(seconds)
    assert not future.done()


def test_cancel_while_waiting_for_a_lock(desk: Desk, pool: ThreadPoolExecutor) -> None:
    case = new_case(desk)
    guard = WriteGuard()
    with write_lock_held(desk):
        future = pool.submit(desk.add_note, case.id, "never saved", guard=guard)
        wait_running(future)
        cancelled_at = time.monotonic()
        assert guard.cancel() is True  # nothing saved, and nothing will be
        with pytest.raises(DeskCancelled) as err:
            future.result(timeout=5)
        assert time.monotonic() - cancelled_at < 2.0  # promptly (the busy wait is 5 s)
    assert str(err.value) == "The change was stopped before it was saved; nothing was changed."
    assert err.value.reason == "cancelled" and not guard.saved
    assert desk.get_case(case.id).notes == ()


def test_cancel_after_the_body_ran_rolls_back(desk: Desk, pool: ThreadPoolExecutor) -> None:
    case = new_case(desk)
    at_commit, release = threading.Event(), threading.Event()

    def pause() -> None:  # runs in the writing thread, inside the transaction
        at_commit.set()
        release.wait(5)

    guard = WriteGuard(before_commit=pause)
    future = pool.submit(desk.add_note, case.id, "rolled back", guard=guard)
    assert at_commit.wait(5)  # the note and its history row are written, not committed
    assert guard.cancel() is True
    release.set()
    with pytest.raises(DeskCancelled):
        future.result(timeout=5)
    case = desk.get_case(case.id)
    assert case.notes == () and [h.action for h in case.history] == ["created"]


def test_deadline_while_waiting_for_a_lock(desk: Desk, pool: ThreadPoolExecutor) -> None:
    case = new_case(desk)
    guard = WriteGuard(timeout_s=0.4)
    start = time.monotonic()
    with write_lock_held(desk):
        with pytest.raises(DeskCancelled) as err:
            desk.add_note(case.id, "too late", guard=guard)
        elapsed = time.monotonic() - start
    assert 0.35 < elapsed < 2.0  # the retry budget stays inside the deadline
    assert err.value.reason == "deadline"
    assert "took too long" in str(err.value) and "nothing was changed" in str(err.value)
    assert desk.get_case(case.id).notes == ()


def test_deadline_passing_during_the_body_rolls_back(desk: Desk) -> None:
    case = new_case(desk)
    guard = WriteGuard(timeout_s=0.2, before_commit=lambda: time.sleep(0.3))
    with pytest.raises(DeskCancelled, match="took too long"):
        desk.add_note(case.id, "slow", guard=guard)
    assert desk.get_case(case.id).notes == ()


def test_guard_cancelled_before_the_write(desk: Desk) -> None:
    case = new_case(desk)
    guard = WriteGuard()
    guard.cancel()
    with pytest.raises(DeskCancelled):
        desk.update_status(case.id, "diagnosing", guard=guard)
    with pytest.raises(DeskCancelled):
        desk.create_case(customer_name="B", device_type="sd", symptom="x", guard=guard)
    assert [c.id for c in desk.list_cases()] == [case.id]


def test_cancel_after_commit_reports_too_late(desk: Desk) -> None:
    case = new_case(desk)
    guard = WriteGuard(timeout_s=30)
    desk.add_note(case.id, "saved", guard=guard)
    assert guard.saved
    assert guard.cancel() is False  # it was saved already
    assert [n.text for n in desk.get_case(case.id).notes] == ["saved"]


def test_a_guard_cancelled_first_stops_even_a_repeat(desk: Desk) -> None:
    """A cancelled call gets no answer from the desk; its key still replays later."""
    case = new_case(desk)
    desk.add_note(case.id, "once", idempotency_key="k")
    guard = WriteGuard()
    guard.cancel()
    with pytest.raises(DeskCancelled):
        desk.add_note(case.id, "once", idempotency_key="k", guard=guard)
    assert desk.add_note(case.id, "once", idempotency_key="k").replayed
    assert len(desk.get_case(case.id).notes) == 1


def test_guard_without_contention_commits(desk: Desk) -> None:
    case = desk.create_case(customer_name="A", device_type="ssd", symptom="x",
                            guard=WriteGuard(timeout_s=5))  # fmt: skip
    assert desk.get_case(case.id).status.value == "received"

"""Several worker processes writing one database at once: nothing lost, nothing doubled."""

from __future__ import annotations

import multiprocessing as mp
import random
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.synchronize import Barrier
from typing import Any

import pytest

from desk import CaseStatus, Desk, IllegalTransition
from tests.support.postgres import desk_target, postgres  # noqa: F401

WORKERS = 4
PER_WORKER = 25
# spawn: a fresh interpreter per worker, like separate agent processes (and no fork+thread
# hazards). Workers are module-level functions so they can be imported in the child.
CTX = mp.get_context("spawn")


@pytest.fixture
def desk(desk_target: str) -> Iterator[Desk]:  # noqa: F811 (a fixture)
    """Every test here runs on SQLite and on PostgreSQL."""
    desk = Desk.open(desk_target)
    yield desk
    desk.close()


def _create_and_note(path: str, shared_id: str, worker: int, start: Barrier) -> None:
    desk = Desk.open(path)
    start.wait(timeout=30)  # all workers hammer the file at the same moment
    for i in range(PER_WORKER):
        desk.create_case(customer_name=f"W{worker} C{i}", device_type="HDD", symptom="x",
                         actor=f"worker-{worker}")  # fmt: skip
        desk.add_note(shared_id, f"w{worker}-{i}", actor=f"worker-{worker}")
        # Without a pause SQLite lets the lock holder win again and again, so workers
        # would run in bursts; a little jitter makes their writes interleave.
        time.sleep(random.uniform(0, 0.002))


def _race_status(path: str, case_ids: list[str], start: Barrier, results: Any) -> None:
    desk = Desk.open(path)
    start.wait(timeout=30)
    won = 0
    for case_id in case_ids:
        try:
            desk.update_status(case_id, CaseStatus.DIAGNOSING)
            won += 1
        except IllegalTransition:
            pass  # someone else moved it first and we saw their write: correct
    results.put(won)


def _run(target: Any, args_for: Any) -> None:
    procs = [CTX.Process(target=target, args=args_for(w)) for w in range(WORKERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    for p in procs:
        if p.is_alive():
            p.kill()
    assert [p.exitcode for p in procs] == [0] * WORKERS


def test_concurrent_creates_and_notes(desk: Desk) -> None:
    path = desk.store.target
    shared = desk.create_case(customer_name="Shared", device_type="RAID", symptom="x")
    start = CTX.Barrier(WORKERS)

    _run(_create_and_note, lambda w: (path, shared.id, w, start))

    query = "SELECT num FROM cases WHERE num != 1001 ORDER BY num"
    nums = desk.store.read(lambda tx: [n for (n,) in tx.execute(query)])
    assert nums == list(range(1002, 1002 + WORKERS * PER_WORKER))  # unique, no gaps
    others = [desk.get_case(str(n)) for n in nums]
    assert {c.customer_name for c in others} == {
        f"W{w} C{i}" for w in range(WORKERS) for i in range(PER_WORKER)
    }
    assert all([h.action for h in c.history] == ["created"] for c in others)

    shared = desk.get_case(shared.id)
    expected_notes = {f"w{w}-{i}" for w in range(WORKERS) for i in range(PER_WORKER)}
    assert {n.text for n in shared.notes} == expected_notes
    assert len(shared.notes) == len(expected_notes)
    note_history = [h.new or "" for h in shared.history if h.action == "note"]
    assert sorted(note_history) == sorted(expected_notes)
    for w in range(WORKERS):  # each worker's notes kept their own order
        mine = [n.text for n in shared.notes if n.author == f"worker-{w}"]
        assert mine == [f"w{w}-{i}" for i in range(PER_WORKER)]


def test_concurrent_transitions_happen_exactly_once(desk: Desk) -> None:
    path = desk.store.target
    ids = [desk.create_case(customer_name=f"C{i}", device_type="sd", symptom="x").id
           for i in range(20)]  # fmt: skip
    start = CTX.Barrier(WORKERS)
    results = CTX.Queue()

    _run(_race_status, lambda w: (path, ids, start, results))

    assert sum(results.get(timeout=5) for _ in range(WORKERS)) == len(ids)
    for case_id in ids:
        case = desk.get_case(case_id)
        assert case.status is CaseStatus.DIAGNOSING
        assert [h.action for h in case.history] == ["created", "status"]


def test_threads_share_a_desk(desk: Desk) -> None:
    """The agent calls the desk via asyncio.to_thread: one Desk, many threads."""
    case = desk.create_case(customer_name="T", device_type="ssd", symptom="x")
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda i: desk.add_note(case.id, f"n{i}"), range(40)))
    assert sorted(n.text for n in desk.get_case(case.id).notes) == sorted(
        f"n{i}" for i in range(40)
    )

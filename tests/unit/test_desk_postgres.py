"""PostgreSQL specifics: schema setup, concurrent openers, lost connections, refusals.

The domain behaviour itself is covered on both backends by the other test_desk_* modules
(their ``desk`` fixture is parametrized over SQLite and PostgreSQL).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.postgres import PostgresServer, postgres, require_psycopg  # noqa: F401

require_psycopg()

import psycopg  # noqa: E402

from desk import Desk, DeskCancelled, DeskError, DeskUnavailable, WriteGuard  # noqa: E402
from desk.db import RETRY_SECONDS  # noqa: E402
from desk.migrations import SCHEMA_VERSION  # noqa: E402
from desk.pg import PostgresStore  # noqa: E402


@pytest.fixture
def url(postgres: PostgresServer) -> str:  # noqa: F811 (a fixture)
    return postgres.url(postgres.fresh_schema())


@pytest.fixture
def desk(url: str) -> Iterator[Desk]:
    desk = Desk.open(url)
    yield desk
    desk.close()


def version(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT version FROM desk_schema").fetchone()
        return int(row[0]) if row else 0


def test_open_creates_the_schema_once(url: str) -> None:
    desk = Desk.open(url)
    assert version(url) == SCHEMA_VERSION
    assert desk.path is None and isinstance(desk.store, PostgresStore)
    Desk.open(url).close()  # reopening is a no-op
    with psycopg.connect(url) as conn:
        tables = {r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )}  # fmt: skip
    assert tables == {"cases", "notes", "history", "idempotency_keys", "desk_schema", "calls",
                      "call_segments", "call_tools", "call_recoveries", "call_turns",
                      "jobs", "payments", "attachments"}  # fmt: skip
    desk.close()


def test_concurrent_openers_migrate_once(url: str) -> None:
    with ThreadPoolExecutor(max_workers=6) as pool:
        desks = list(pool.map(lambda _: Desk.open(url), range(6)))
    assert version(url) == SCHEMA_VERSION
    assert desks[0].create_case(customer_name="A", device_type="sd", symptom="x").id == "R-1001"
    for d in desks:
        d.close()


def test_newer_schema_is_refused(url: str) -> None:
    Desk.open(url).close()
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE desk_schema SET version = %s", (SCHEMA_VERSION + 1,))
    with pytest.raises(DeskError, match="newer than this program"):
        Desk.open(url)


def test_unreachable_server_is_a_sentence(postgres: PostgresServer) -> None:  # noqa: F811
    dead = postgres.url().replace(f"port={postgres.port}", "port=1")
    with pytest.raises(DeskUnavailable) as err:
        Desk.open(dead)
    assert str(err.value) == (
        "The case system can't be reached right now; please try again in a moment."
    )


def test_describe_hides_the_password() -> None:
    store = PostgresStore.__new__(PostgresStore)  # no connection needed
    store._params = {"user": "kaiwa", "password": "s3cret", "host": "db", "port": "5432",
                     "dbname": "desk"}  # fmt: skip
    assert store.describe() == "postgresql://kaiwa@db:5432/desk"


def test_a_dropped_connection_is_replaced(desk: Desk, url: str) -> None:
    case = desk.create_case(customer_name="A", device_type="sd", symptom="x")
    with psycopg.connect(url, autocommit=True) as admin:  # the server ends our sessions
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE pid <> pg_backend_pid() AND datname = current_database()"
        )
    assert desk.add_note(case.id, "after the restart").notes[-1].text == "after the restart"
    assert desk.get_case(case.id).id == case.id


def test_timestamps_sort_as_time(desk: Desk) -> None:
    """Stored as ISO text with a byte-order collation, whatever the database locale."""
    now = dt.datetime(2030, 1, 1, 9, tzinfo=dt.UTC)
    clocked = Desk(desk.store, clock=lambda: now)
    first = clocked.create_case(customer_name="A", device_type="sd", symptom="x")
    now += dt.timedelta(microseconds=1)
    second = clocked.create_case(customer_name="B", device_type="sd", symptom="x")
    now += dt.timedelta(seconds=10)
    clocked.add_note(first.id, "touched last")
    assert [c.id for c in desk.list_cases()] == [first.id, second.id]


def test_deadline_bounds_the_lock_wait(desk: Desk, url: str) -> None:
    case = desk.create_case(customer_name="A", device_type="sd", symptom="x")
    started = threading.Event()
    with psycopg.connect(url) as holder:
        holder.execute("SELECT num FROM cases FOR UPDATE")
        started.set()
        guard = WriteGuard(timeout_s=0.3)
        with pytest.raises(DeskCancelled, match="took too long"):
            desk.set_quote(case.id, 1, guard=guard)
        assert guard.remaining() == 0 and RETRY_SECONDS > 1
        holder.rollback()
    assert desk.get_case(case.id).history[-1].action == "created"

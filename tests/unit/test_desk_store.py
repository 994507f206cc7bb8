"""Storage: file setup, migrations from older schemas, history and serialisation."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from desk import Desk, DeskError
from desk.db import SqliteTx
from desk.migrations import MIGRATIONS, SCHEMA_VERSION, migrate
from tests.support.postgres import desk_target, postgres  # noqa: F401


@pytest.fixture
def desk(desk_target: str) -> Iterator[Desk]:  # noqa: F811 (a fixture)
    """Tests that take ``desk`` run on SQLite and on PostgreSQL."""
    desk = Desk.open(desk_target)
    yield desk
    desk.close()


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def test_open_creates_parent_dirs_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "data" / "nested" / "desk.sqlite3"
    Desk.open(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert schema_version(conn) == SCHEMA_VERSION == len(MIGRATIONS)
    Desk.open(path)  # reopening is a no-op


def test_foreign_keys_enforced(tmp_path: Path) -> None:
    from desk.db import connect

    path = tmp_path / "desk.sqlite3"
    Desk.open(path)
    conn = connect(path)
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO notes (case_num, at, author, text) VALUES (1, 'a', 'b', 'c')")
    conn.close()


def test_v1_database_migrates_and_backfills(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    migrate(SqliteTx(conn), target=1)
    conn.execute(
        "INSERT INTO cases (num, customer_name, phone, email, device_type, symptom, status,"
        " quote_yen, return_date, created_at, updated_at) VALUES (1001, 'タナカ ハナコ',"
        " '+81 90-1111-2222', NULL, 'HDD', 'clicks', 'ready', 20000, '2030-01-02',"
        " '2024-01-01T00:00:00+00:00', '2024-01-01T00:00:00+00:00')"
    )
    conn.execute("COMMIT")
    assert schema_version(conn) == 1
    conn.close()

    desk = Desk.open(path)
    with sqlite3.connect(path) as check:
        assert schema_version(check) == SCHEMA_VERSION
    case = desk.get_case("R-1001")
    assert (case.status.value, case.quote_yen, case.return_kind) == ("ready", 20_000, "return")
    assert case.return_date == dt.date(2030, 1, 2)
    assert [c.id for c in desk.find_cases(name="tanaka")] == ["R-1001"]  # key backfilled
    assert [c.id for c in desk.find_cases(phone="090-1111-2222")] == ["R-1001"]
    assert desk.create_case(customer_name="B", device_type="ssd", symptom="x").id == "R-1002"


def test_newer_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite3"
    Desk.open(path)
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(DeskError, match="newer than this program"):
        Desk.open(path)


def test_history_records_every_change(desk: Desk) -> None:
    case = desk.create_case(customer_name="Ito", device_type="USB", symptom="x", actor="reception")
    desk.update_status(case.id, "diagnosing", actor="tech")
    desk.add_note(case.id, "platter scratched", actor="tech")
    desk.set_quote(case.id, 80_000, actor="tech")
    desk.schedule_return(case.id, dt.date.today(), kind="pickup", actor="agent")
    case = desk.cancel_case(case.id, reason="too expensive", actor="agent")
    rows = [(h.actor, h.action, h.old, h.new) for h in case.history]
    assert rows == [
        ("reception", "created", None, "received"),
        ("tech", "status", "received", "diagnosing"),
        ("tech", "note", None, "platter scratched"),
        ("tech", "quote_yen", None, "80000"),
        ("tech", "status", "diagnosing", "quoted"),
        ("agent", "return_date", None, dt.date.today().isoformat()),
        ("agent", "return_kind", None, "pickup"),
        ("agent", "status", "quoted", "cancelled"),
        ("agent", "note", None, "Cancelled: too expensive"),
    ]
    ats = [h.at for h in case.history]
    assert ats == sorted(ats) and all(a.tzinfo == dt.UTC for a in ats)
    assert case.updated_at == ats[-1] and case.created_at == ats[0]


def test_to_dict_is_json_safe_and_summary_is_short(desk: Desk) -> None:
    case = desk.create_case(customer_name="Mori", phone="03-1234-5678", device_type="nas",
                            symptom="RAID degraded")  # fmt: skip
    desk.update_status(case.id, "diagnosing")
    desk.set_quote(case.id, 150_000)
    case = desk.add_note(case.id, "two disks failed")
    data = json.loads(json.dumps(case.to_dict()))
    assert set(data) == {
        "id", "customer_name", "phone", "email", "device_type", "symptom", "status",
        "quote_yen", "notes", "return_date", "return_kind", "created_at", "updated_at",
        "history", "technician", "payments", "paid_yen", "balance_yen", "attachments",
    }  # fmt: skip
    assert data["device_type"] == "RAID/NAS" and data["quote_yen"] == 150_000
    assert data["notes"][0]["text"] == "two disks failed"
    assert set(data["notes"][0]) == {"at", "author", "text"}
    assert set(data["history"][0]) == {"at", "actor", "action", "old", "new"}
    assert dt.datetime.fromisoformat(data["created_at"]).utcoffset() == dt.timedelta(0)
    assert case.summary() == {
        "id": "R-1001",
        "customer": "Mori",
        "device": "RAID/NAS",
        "status": "quoted",
        "quote": "150,000 yen",
        "date": None,
    }


def test_every_change_records_who_made_it(desk: Desk) -> None:
    case = desk.create_case(customer_name="Ito", device_type="ssd", symptom="x")
    case = desk.update_status(case.id, "diagnosing", actor="staff:alice")
    assert case.changed_by == "staff:alice"
    case = desk.add_note(case.id, "checked the drive", actor=" staff:alice ")
    assert [(h.action, h.changed_by) for h in case.history] == [
        ("created", "agent"),
        ("status", "staff:alice"),
        ("note", "staff:alice"),
    ]
    assert case.notes[0].author == "staff:alice"
    assert case.history[-1].to_dict()["actor"] == "staff:alice"


def test_sqlite_url_forms(tmp_path: Path) -> None:
    path = tmp_path / "url.sqlite3"
    desk = Desk.open(f"sqlite:///{path}")  # sqlite:////abs/path
    desk.create_case(customer_name="A", device_type="sd", symptom="x")
    assert desk.path == path and desk.store.target == str(path)
    assert [c.id for c in Desk.open(path).list_cases()] == ["R-1001"]

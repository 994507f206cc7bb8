"""Versioned schema. ``PRAGMA user_version`` holds how many MIGRATIONS have been applied.

Append new migrations; never edit one that has shipped. Each runs inside the same
BEGIN IMMEDIATE transaction as its user_version bump, so a crash or a concurrent opener
never sees a half-migrated file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from desk.errors import DeskError
from desk.names import name_key
from desk.phones import phone_digits

Migration = Callable[[sqlite3.Connection], None]


def _v1_core(conn: sqlite3.Connection) -> None:
    """Cases with notes and an append-only change history."""
    for sql in (
        """CREATE TABLE cases (
            num           INTEGER PRIMARY KEY,   -- R-<num>
            customer_name TEXT NOT NULL,
            phone         TEXT,
            email         TEXT,
            device_type   TEXT NOT NULL,
            symptom       TEXT NOT NULL,
            status        TEXT NOT NULL,
            quote_yen     INTEGER,
            return_date   TEXT,                  -- ISO date
            created_at    TEXT NOT NULL,         -- UTC ISO 8601
            updated_at    TEXT NOT NULL
        )""",
        """CREATE TABLE notes (
            id       INTEGER PRIMARY KEY,
            case_num INTEGER NOT NULL REFERENCES cases(num),
            at       TEXT NOT NULL,
            author   TEXT NOT NULL,
            text     TEXT NOT NULL
        )""",
        """CREATE TABLE history (
            id       INTEGER PRIMARY KEY,
            case_num INTEGER NOT NULL REFERENCES cases(num),
            at       TEXT NOT NULL,
            actor    TEXT NOT NULL,
            action   TEXT NOT NULL,
            old      TEXT,
            new      TEXT
        )""",
        "CREATE INDEX notes_case ON notes(case_num, id)",
        "CREATE INDEX history_case ON history(case_num, id)",
    ):
        conn.execute(sql)


def _v2_search_and_return_kind(conn: sqlite3.Connection) -> None:
    """Precomputed lookup keys (folded name + romaji, phone digits) and return vs pickup."""
    conn.execute("ALTER TABLE cases ADD COLUMN return_kind TEXT")
    conn.execute("ALTER TABLE cases ADD COLUMN name_key TEXT NOT NULL DEFAULT ''")
    conn.execute("ALTER TABLE cases ADD COLUMN phone_digits TEXT")
    # Backfill in Python: the keys come from our own normalisation code. If that code
    # changes later, a new migration must recompute the keys the same way.
    rows = conn.execute("SELECT num, customer_name, phone FROM cases").fetchall()
    for num, name, phone in rows:
        conn.execute(
            "UPDATE cases SET name_key = ?, phone_digits = ?, "
            "return_kind = CASE WHEN return_date IS NULL THEN NULL ELSE 'return' END "
            "WHERE num = ?",
            (name_key(name), phone_digits(phone) if phone else None, num),
        )
    conn.execute("CREATE INDEX cases_status ON cases(status, updated_at)")
    conn.execute("CREATE INDEX cases_updated ON cases(updated_at)")


MIGRATIONS: tuple[Migration, ...] = (_v1_core, _v2_search_and_return_kind)
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Apply pending migrations up to ``target``; call inside a write transaction."""
    current = schema_version(conn)
    if current > len(MIGRATIONS):
        raise DeskError(
            f"The case database is schema version {current}, newer than this program "
            f"understands ({len(MIGRATIONS)}); please update the software."
        )
    for version in range(current, target):
        MIGRATIONS[version](conn)
        conn.execute(f"PRAGMA user_version = {version + 1}")  # PRAGMA takes no parameters
    return max(current, target)

"""Versioned schema, one list for SQLite and PostgreSQL.

The schema version is how many MIGRATIONS have been applied (SQLite: ``PRAGMA
user_version``; PostgreSQL: the ``desk_schema`` table, see desk.pg). Append new
migrations; never change what one does once it has shipped (the SQL below is written once
with dialect tokens, see desk.db.Dialect; on SQLite they render to the original text).
Each runs inside the same write transaction as its version bump, under the 'schema' lock,
so a crash or a concurrent opener never sees a half-migrated database.
"""

from __future__ import annotations

from collections.abc import Callable

from desk.db import Tx
from desk.errors import DeskError
from desk.names import name_key
from desk.phones import phone_digits

Migration = Callable[[Tx], None]


def _v1_core(conn: Tx) -> None:
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
            created_at    {ts} NOT NULL,         -- UTC ISO 8601
            updated_at    {ts} NOT NULL
        )""",
        """CREATE TABLE notes (
            id       {autoid},
            case_num INTEGER NOT NULL REFERENCES cases(num),
            at       {ts} NOT NULL,
            author   TEXT NOT NULL,
            text     TEXT NOT NULL
        )""",
        """CREATE TABLE history (
            id       {autoid},
            case_num INTEGER NOT NULL REFERENCES cases(num),
            at       {ts} NOT NULL,
            actor    TEXT NOT NULL,
            action   TEXT NOT NULL,
            old      TEXT,
            new      TEXT
        )""",
        "CREATE INDEX notes_case ON notes(case_num, id)",
        "CREATE INDEX history_case ON history(case_num, id)",
    ):
        conn.execute(sql)


def _v2_search_and_return_kind(conn: Tx) -> None:
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


def _v3_idempotency_and_call_scope(conn: Tx) -> None:
    """Idempotency keys (the first result of each keyed write) and the call that opened
    a case (to spot a duplicate create within one call)."""
    conn.execute(
        """CREATE TABLE idempotency_keys (
            key        TEXT PRIMARY KEY,
            operation  TEXT NOT NULL,            -- 'create_case', 'add_note', ...
            request    TEXT NOT NULL,            -- hash of the operation's arguments
            case_num   INTEGER,
            result     TEXT,                     -- the Case as JSON (Case.to_dict)
            at         {ts} NOT NULL
        )"""
    )
    conn.execute("CREATE INDEX idempotency_keys_at ON idempotency_keys(at)")
    conn.execute("ALTER TABLE cases ADD COLUMN call_scope TEXT")
    conn.execute("CREATE INDEX cases_call_scope ON cases(call_scope)")


def _v4_call_records(conn: Tx) -> None:
    """Call records (desk/calls.py): one row per call (scope = the conversation, shared by
    a crashed job's replacement) with usage and cost sums, and append-only rows below it."""
    conn.execute(
        """CREATE TABLE calls (
            id               {autoid},
            scope            TEXT NOT NULL UNIQUE,  -- room:first job id (agent/lifecycle.py)
            room             TEXT NOT NULL,
            jobs             TEXT NOT NULL,         -- JSON list of job ids, in order
            started_at       {ts} NOT NULL,
            ended_at         {ts},
            end_reason       TEXT,
            role             TEXT,
            identity         TEXT,
            channel          TEXT,
            model            TEXT,
            in_audio_tokens  BIGINT NOT NULL DEFAULT 0,
            in_text_tokens   BIGINT NOT NULL DEFAULT 0,
            in_image_tokens  BIGINT NOT NULL DEFAULT 0,
            in_cached_tokens BIGINT NOT NULL DEFAULT 0,
            out_audio_tokens BIGINT NOT NULL DEFAULT 0,
            out_text_tokens  BIGINT NOT NULL DEFAULT 0,
            cost             DOUBLE PRECISION NOT NULL DEFAULT 0,  -- estimated, in currency
            currency         TEXT,
            segments         INTEGER NOT NULL DEFAULT 0,
            tool_calls       INTEGER NOT NULL DEFAULT 0,
            recoveries       INTEGER NOT NULL DEFAULT 0,
            turns            INTEGER NOT NULL DEFAULT 0,
            latency_p50_ms   INTEGER,
            latency_p95_ms   INTEGER,
            purged_at        {ts}                   -- transcripts removed by retention
        )"""
    )
    conn.execute("CREATE INDEX calls_started ON calls(started_at)")
    for sql in (
        """CREATE TABLE call_segments (
            id          {autoid},
            call_id     INTEGER NOT NULL REFERENCES calls(id),
            job_id      TEXT NOT NULL,
            item_id     TEXT,                       -- the chat item; a later final replaces it
            at          {ts} NOT NULL,
            speaker     TEXT NOT NULL,              -- caller | agent
            text        TEXT NOT NULL,
            interrupted INTEGER NOT NULL DEFAULT 0
        )""",
        """CREATE TABLE call_tools (
            id          {autoid},
            call_id     INTEGER NOT NULL REFERENCES calls(id),
            job_id      TEXT NOT NULL,
            at          {ts} NOT NULL,
            call_key    TEXT NOT NULL,              -- the function-call id
            name        TEXT NOT NULL,
            arguments   TEXT,                       -- JSON, redacted; NULL once purged
            outcome     TEXT NOT NULL,              -- ok | error | timeout | cancelled
            duration_ms INTEGER NOT NULL,
            error       TEXT,
            case_id     TEXT                        -- R-1042
        )""",
        """CREATE TABLE call_recoveries (
            id          {autoid},
            call_id     INTEGER NOT NULL REFERENCES calls(id),
            job_id      TEXT NOT NULL,
            at          {ts} NOT NULL,
            kind        TEXT NOT NULL,
            duration_s  DOUBLE PRECISION NOT NULL,
            detail      TEXT
        )""",
        """CREATE TABLE call_turns (
            id          {autoid},
            call_id     INTEGER NOT NULL REFERENCES calls(id),
            job_id      TEXT NOT NULL,
            at          {ts} NOT NULL,
            latency_ms  INTEGER NOT NULL,
            tool_ms     INTEGER NOT NULL DEFAULT 0
        )""",
    ):
        conn.execute(sql)
    for table in ("call_segments", "call_tools", "call_recoveries", "call_turns"):
        conn.execute(f"CREATE INDEX {table}_call ON {table}(call_id, at)")
    conn.execute("CREATE INDEX call_tools_case ON call_tools(case_id)")


def _v5_jobs(conn: Tx) -> None:
    """Background jobs (desk/jobs.py): who started which allow-listed job, with what
    arguments, and how it ended (exit status, output tail, duration; result delivered)."""
    conn.execute(
        """CREATE TABLE jobs (
            id           TEXT PRIMARY KEY,          -- J-<hex>
            scope        TEXT NOT NULL,             -- the call (room:first job id)
            actor        TEXT NOT NULL,             -- staff:alice
            name         TEXT NOT NULL,             -- the allow-listed job
            arguments    TEXT NOT NULL,             -- JSON, validated parameters
            status       TEXT NOT NULL,             -- running, succeeded, failed, ...
            started_at   {ts} NOT NULL,
            ended_at     {ts},
            exit_code    INTEGER,
            output       TEXT NOT NULL DEFAULT '',  -- the tail of its output
            duration_ms  INTEGER,
            pid          INTEGER,
            delivered_at {ts}                       -- its result went to the model (once)
        )"""
    )
    conn.execute("CREATE INDEX jobs_scope ON jobs(scope, started_at)")
    conn.execute("CREATE INDEX jobs_started ON jobs(started_at)")


def _v6_case_operations(conn: Tx) -> None:
    """The console's case operations (desk/service.py): the assigned technician (free
    text), payments against the quote, and files attached to a case (bytes in the
    database, with name, type, size and SHA-256)."""
    conn.execute("ALTER TABLE cases ADD COLUMN technician TEXT")
    conn.execute(
        """CREATE TABLE payments (
            id         {autoid},
            case_num   INTEGER NOT NULL REFERENCES cases(num),
            at         {ts} NOT NULL,
            actor      TEXT NOT NULL,
            amount_yen INTEGER NOT NULL,
            method     TEXT NOT NULL              -- cash, card, bank_transfer, other
        )"""
    )
    conn.execute(
        """CREATE TABLE attachments (
            id           {autoid},
            case_num     INTEGER NOT NULL REFERENCES cases(num),
            at           {ts} NOT NULL,
            actor        TEXT NOT NULL,
            name         TEXT NOT NULL,
            content_type TEXT NOT NULL,         -- sniffed from the bytes, not the client
            size         INTEGER NOT NULL,
            sha256       TEXT NOT NULL,
            data         {blob} NOT NULL
        )"""
    )
    conn.execute("CREATE INDEX payments_case ON payments(case_num, id)")
    conn.execute("CREATE INDEX attachments_case ON attachments(case_num, id)")


MIGRATIONS: tuple[Migration, ...] = (
    _v1_core,
    _v2_search_and_return_kind,
    _v3_idempotency_and_call_scope,
    _v4_call_records,
    _v5_jobs,
    _v6_case_operations,
)
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: Tx) -> int:
    return conn.schema_version()


def migrate(conn: Tx, target: int = SCHEMA_VERSION) -> int:
    """Apply pending migrations up to ``target``; call inside a write transaction."""
    conn.lock("schema")
    current = conn.schema_version()
    if current > len(MIGRATIONS):
        raise DeskError(
            f"The case database is schema version {current}, newer than this program "
            f"understands ({len(MIGRATIONS)}); please update the software."
        )
    for version in range(current, target):
        MIGRATIONS[version](conn)
        conn.set_schema_version(version + 1)
    return max(current, target)

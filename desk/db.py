"""SQLite connections and retrying transactions.

Connection policy: one short-lived connection per call. Nothing is shared between
threads or processes (safe under asyncio.to_thread and multiprocessing), and opening a
local SQLite file costs well under a millisecond.

Write policy: every write is one ``BEGIN IMMEDIATE`` transaction, so the write lock is
taken *before* reading the state that the write depends on; two writers therefore never
both read the old value (no lost updates). If the lock stays busy past SQLite's own
busy_timeout, the whole transaction function is re-run after a jittered back-off.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from desk.errors import DeskBusy

T = TypeVar("T")

DEFAULT_PATH = Path("data/desk.sqlite3")
ENV_VAR = "KAIWA_DESK_DB"
BUSY_TIMEOUT_MS = 5_000  # SQLite waits this long for a lock inside one statement
RETRY_SECONDS = 10.0  # then retry whole transactions this long (a caller is waiting)

_BUSY_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}


class Conflict(Exception):
    """An optimistic check failed (the row changed under us): re-run the transaction."""


def default_db_path() -> Path:
    return Path(os.environ.get(ENV_VAR) or DEFAULT_PATH)


def connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: the sqlite3 module opens no implicit transactions; we issue
    # BEGIN/COMMIT ourselves.
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")  # per connection, off by default
    return conn


def enable_wal(path: Path) -> None:
    """WAL lets readers proceed while one process writes; the mode is stored in the file."""

    def apply(conn: sqlite3.Connection) -> None:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"could not enable WAL (journal_mode={mode})")

    _retrying(path, apply, begin=None)


def write(path: Path, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``fn`` in a BEGIN IMMEDIATE transaction, retrying on busy/conflict."""
    return _retrying(path, fn, begin="BEGIN IMMEDIATE")


def read(path: Path, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``fn`` in a read transaction: one consistent snapshot across its SELECTs."""
    return _retrying(path, fn, begin="BEGIN")


def _is_busy(err: sqlite3.OperationalError) -> bool:
    code = getattr(err, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _BUSY_CODES  # extended codes keep the primary in the low byte
    return "locked" in str(err) or "busy" in str(err)


def _retrying(path: Path, fn: Callable[[sqlite3.Connection], T], *, begin: str | None) -> T:
    deadline = time.monotonic() + RETRY_SECONDS
    delay = 0.005
    while True:
        conn = connect(path)
        try:
            if begin:
                conn.execute(begin)
            result = fn(conn)
            if begin:
                conn.execute("COMMIT")
            return result
        except (sqlite3.OperationalError, Conflict) as err:
            retryable = isinstance(err, Conflict) or _is_busy(err)
            if not retryable:
                raise
            if time.monotonic() + delay > deadline:
                raise DeskBusy() from err
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.close()
        time.sleep(delay * random.uniform(0.5, 1.5))  # jitter so retries don't collide
        delay = min(delay * 2, 0.5)

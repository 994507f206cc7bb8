"""Storage: transactions, retries and the few dialect differences, in one place.

``open_store(target)`` gives a ``Store``: a plain path or ``sqlite:///path`` is SQLite
(this module), ``postgresql://...`` is PostgreSQL (desk.pg). Domain code (service,
migrations) writes its SQL once, with ``?`` placeholders and the ``Dialect`` tokens below,
and runs it through ``Tx.execute`` inside ``store.read(fn)`` / ``store.write(fn, guard)``.

Connection policy (SQLite): one short-lived connection per call. Nothing is shared between
threads or processes (safe under asyncio.to_thread and multiprocessing), and opening a
local SQLite file costs well under a millisecond.

Write policy: every write is one transaction that takes its lock *before* reading the
state it depends on (SQLite: ``BEGIN IMMEDIATE``, the database write lock; PostgreSQL:
``SELECT ... FOR UPDATE`` on the case row, or ``Tx.lock`` for creates), so two writers
never both read the old value (no lost updates). If the lock stays busy, or the database
reports a serialization failure, the whole transaction function is re-run after a
jittered back-off, for at most RETRY_SECONDS (or up to the guard's deadline, if sooner).

A ``WriteGuard`` (desk.guard) stops the loop when it is cancelled or past its deadline,
and is checked once more right before COMMIT; a stopped write is rolled back and raises
``DeskCancelled``.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from desk.errors import DeskBusy, DeskCancelled
from desk.guard import WriteGuard

T = TypeVar("T")

DEFAULT_PATH = Path("data/desk.sqlite3")
ENV_VAR = "KAIWA_DESK_DB"
BUSY_TIMEOUT_MS = 5_000  # SQLite waits this long for a lock inside one statement
RETRY_SECONDS = 10.0  # then retry whole transactions this long (a caller is waiting)
GUARD_SLICE_S = 0.1  # with a guard, wait for a lock in slices this long, checking between


class Conflict(Exception):
    """An optimistic check failed (the row changed under us): re-run the transaction."""


class Retry(Exception):
    """Raised by a store's attempt: re-run the transaction. ``waited``: the attempt
    already spent its time waiting for a lock, so retry without a long back-off."""

    def __init__(self, *, waited: bool = False) -> None:
        super().__init__("retry")
        self.waited = waited


def default_db_path() -> Path:
    return Path(os.environ.get(ENV_VAR) or DEFAULT_PATH)


def default_db_target() -> str:
    """$KAIWA_DESK_DB (a path or a URL) or the default file. Not a Path: that would
    squash the '//' of a URL."""
    return os.environ.get(ENV_VAR) or str(DEFAULT_PATH)


def sqlite_path(target: str | os.PathLike[str]) -> Path | None:
    """The file for a path or ``sqlite:///path``; None for a PostgreSQL URL."""
    text = os.fspath(target)
    if text.startswith(("postgresql://", "postgres://")):
        return None
    if text.startswith("sqlite://"):
        text = text.removeprefix("sqlite://")
        # sqlite:///relative/path is relative; sqlite:////abs/path is absolute.
        text = text[1:] if text.startswith("/") else text
    return Path(text)


# ----------------------------------------------------------------- interfaces


class Row(Protocol):
    """A result row: by column name (``row["num"]``) or position, and unpackable."""

    def __getitem__(self, key: Any, /) -> Any: ...
    def __iter__(self) -> Iterator[Any]: ...
    def __len__(self) -> int: ...


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...
    def __iter__(self) -> Iterator[Any]: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


@dataclass(frozen=True)
class Dialect:
    """What differs in SQL text. Statements use these tokens: ``{autoid}`` (an integer
    key the database assigns), ``{ts}`` (ISO-8601 text that must sort bytewise),
    ``{for_update}`` (appended to a SELECT whose rows the transaction will change) and
    ``{is}`` (null-safe equality: ``a {is} ?``) and ``{blob}`` (a column of bytes)."""

    name: str
    autoid: str
    ts: str
    for_update: str
    null_safe_eq: str
    blob: str = "BLOB"

    def render(self, sql: str) -> str:
        return (
            sql.replace("{autoid}", self.autoid)
            .replace("{ts}", self.ts)
            .replace("{for_update}", self.for_update)
            .replace("{is}", self.null_safe_eq)
            .replace("{blob}", self.blob)
        )


SQLITE = Dialect(
    name="sqlite", autoid="INTEGER PRIMARY KEY", ts="TEXT", for_update="", null_safe_eq="IS"
)


class Tx(ABC):
    """One open transaction, handed to the function run by Store.read/write."""

    dialect: Dialect
    #: Set by a write that turned out to write nothing new (an idempotent replay): its
    #: result was saved by an earlier commit, so a cancelled guard must not refuse it.
    skip_guard: bool = False

    @abstractmethod
    def execute(self, sql: str, params: Sequence[object] = ()) -> Cursor:
        """Run one statement; ``?`` placeholders, dialect tokens rendered."""

    @abstractmethod
    def lock(self, name: str) -> None:
        """Serialise writers of one kind ('cases': number allocation; 'schema')."""

    @abstractmethod
    def schema_version(self) -> int: ...

    @abstractmethod
    def set_schema_version(self, version: int) -> None: ...


class Store(ABC):
    dialect: Dialect
    #: What Desk.open takes to reach this store again (e.g. from another process). May
    #: hold a password: print describe() instead.
    target: str

    @abstractmethod
    def describe(self) -> str:
        """Where the data lives, safe to print (no password)."""

    def read(self, fn: Callable[[Tx], T]) -> T:
        """Run ``fn`` in a read transaction: one consistent snapshot across its SELECTs."""
        return self._run(fn, write=False, guard=None)

    def write(self, fn: Callable[[Tx], T], guard: WriteGuard | None = None) -> T:
        """Run ``fn`` in a write transaction, retrying on busy/conflict/serialization."""
        return self._run(fn, write=True, guard=guard)

    @abstractmethod
    def _attempt(
        self, fn: Callable[[Tx], T], *, write: bool, guard: WriteGuard | None, end: float
    ) -> T:
        """One try: begin, fn, (guard check), commit. Raise Retry to be re-run; roll
        back on any exception. ``end`` is the monotonic time the retry budget ends."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release pooled connections (PostgreSQL); SQLite holds none."""

    def _run(self, fn: Callable[[Tx], T], *, write: bool, guard: WriteGuard | None) -> T:
        end = time.monotonic() + RETRY_SECONDS
        guard_deadline = guard.deadline if guard is not None else None
        bounded_by_guard = guard_deadline is not None and guard_deadline <= end
        if guard_deadline is not None and bounded_by_guard:
            end = guard_deadline
        delay = 0.005
        while True:
            if guard is not None:
                guard.check()
            try:
                return self._attempt(fn, write=write, guard=guard, end=end)
            except Retry as err:
                cause = err.__cause__ or err
                waited = err.waited
                if guard is not None:
                    guard.check()  # a cancel or an expired deadline wins over "busy"
                pause = 0.001 if waited else delay * random.uniform(0.5, 1.5)
                if time.monotonic() + pause > end:
                    if bounded_by_guard:
                        raise DeskCancelled("deadline") from cause
                    raise DeskBusy() from cause
            if guard is not None:
                guard.sleep(pause)  # wakes at once on cancel
            else:
                time.sleep(pause)  # jitter so retries don't collide
            if not waited:
                delay = min(delay * 2, 0.5)


def open_store(target: str | os.PathLike[str]) -> Store:
    """A Store for a path, ``sqlite:///path`` or ``postgresql://...`` (also postgres://)."""
    path = sqlite_path(target)
    if path is None:
        try:
            from desk.pg import PostgresStore  # psycopg is only needed for PostgreSQL
        except ImportError as err:
            raise RuntimeError(
                "a PostgreSQL URL needs psycopg 3: pip install 'psycopg[binary]'"
            ) from err
        return PostgresStore(os.fspath(target))
    return SqliteStore(path)


# --------------------------------------------------------------------- SQLite

_BUSY_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}


def connect(path: Path, timeout_s: float = BUSY_TIMEOUT_MS / 1000) -> sqlite3.Connection:
    # isolation_level=None: the sqlite3 module opens no implicit transactions; we issue
    # BEGIN/COMMIT ourselves.
    conn = sqlite3.connect(path, timeout=timeout_s, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {max(1, int(timeout_s * 1000))}")
    conn.execute("PRAGMA foreign_keys = ON")  # per connection, off by default
    return conn


def _is_busy(err: sqlite3.OperationalError) -> bool:
    code = getattr(err, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _BUSY_CODES  # extended codes keep the primary in the low byte
    return "locked" in str(err) or "busy" in str(err)


class SqliteTx(Tx):
    dialect = SQLITE

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[object] = ()) -> Cursor:
        return self.conn.execute(self.dialect.render(sql), params)

    def lock(self, name: str) -> None:
        """BEGIN IMMEDIATE already holds the database's single write lock."""

    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def set_schema_version(self, version: int) -> None:
        self.conn.execute(f"PRAGMA user_version = {int(version)}")  # PRAGMA takes no params


class SqliteStore(Store):
    dialect = SQLITE

    def __init__(self, path: Path) -> None:
        """Creates the file (and parent dirs) if needed and enables WAL."""
        self.path = path
        self.target = str(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._enable_wal()

    def describe(self) -> str:
        return str(self.path)

    def _enable_wal(self) -> None:
        """WAL lets readers proceed while one process writes; the mode is stored in the file."""
        deadline = time.monotonic() + RETRY_SECONDS
        while True:
            conn = connect(self.path)
            try:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise sqlite3.OperationalError(f"could not enable WAL (journal_mode={mode})")
                return
            except sqlite3.OperationalError as err:
                if not _is_busy(err) or time.monotonic() > deadline:
                    raise
            finally:
                conn.close()
            time.sleep(random.uniform(0.005, 0.05))

    def _attempt(
        self, fn: Callable[[Tx], T], *, write: bool, guard: WriteGuard | None, end: float
    ) -> T:
        # SQLite's busy wait can't be interrupted, so with a guard we wait in slices and
        # let the retry loop check the guard between them.
        wait = min(BUSY_TIMEOUT_MS / 1000, max(0.001, end - time.monotonic()))
        if guard is not None:
            wait = min(wait, GUARD_SLICE_S)
        conn = connect(self.path, wait)
        try:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            tx = SqliteTx(conn)
            result = fn(tx)
            if write and guard is not None and not tx.skip_guard:
                with guard.committing():
                    conn.execute("COMMIT")
            else:
                conn.execute("COMMIT")
            return result
        except Conflict as err:
            raise Retry() from err
        except sqlite3.OperationalError as err:
            if _is_busy(err):
                raise Retry(waited=True) from err
            raise
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.close()

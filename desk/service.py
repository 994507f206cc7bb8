"""The service desk: every operation the voice agent (or an operator) can perform.

Each public method is synchronous and self-contained: it validates its input, then runs
one short transaction on a fresh connection (see desk.db), so callers may use it from any
thread or process.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable
from pathlib import Path

from desk import db, validate
from desk.devices import DeviceType, parse_device_type
from desk.errors import CaseNotFound, IllegalTransition, InvalidInput, WrongState
from desk.ids import FIRST_NUMBER, format_case_id, parse_case_id
from desk.migrations import SCHEMA_VERSION, migrate, schema_version
from desk.models import Case, HistoryEntry, Note
from desk.names import name_key, query_terms
from desk.phones import phone_digits
from desk.status import CaseStatus, next_states, parse_status
from desk.validate import ReturnKind

# A change callback sees the current row (read under the write lock) and the timestamp.
_Change = Callable[[sqlite3.Connection, sqlite3.Row, str], None]

QUOTABLE = (CaseStatus.DIAGNOSING, CaseStatus.QUOTED)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


class Desk:
    def __init__(self, path: Path) -> None:
        """Use Desk.open(): it prepares the file first."""
        self.path = path

    @classmethod
    def open(cls, path: str | Path) -> Desk:
        """Create the file (and parent dirs) if needed, enable WAL, run pending migrations."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        db.enable_wal(path)
        if db.read(path, schema_version) != SCHEMA_VERSION:
            db.write(path, migrate)  # re-checks the version under the write lock
        return cls(path)

    # ----------------------------------------------------------------- reads

    def get_case(self, case_id: str) -> Case:
        num = _case_number(case_id)
        return db.read(self.path, lambda conn: _load(conn, num))

    def find_cases(
        self,
        *,
        name: str | None = None,
        phone: str | None = None,
        status: CaseStatus | str | None = None,
        limit: int = 5,
    ) -> list[Case]:
        """Cases matching all given criteria, most recently updated first.

        name: every spoken word must match part of the name (see desk.names);
        phone: the given digits must end the stored number (so the last 4 digits work).
        With no criteria this is simply the most recent cases. ``limit`` is capped at 100.
        """
        # Function-calling models often send "" for "not given"; treat blanks as absent.
        name, phone = _given(name), _given(phone)
        status = status if status and status.strip() else None
        clauses: list[str] = []
        params: list[object] = []
        if name is not None:
            terms = query_terms(name)
            if not terms:
                raise InvalidInput(
                    "Please give at least part of the customer's name.", field="name"
                )
            for folded, romaji in terms:
                clauses.append("(name_key LIKE ? OR name_key LIKE ?)")
                params += [f"%{folded}%", f"%{romaji}%"]
        if phone is not None:
            clauses.append("phone_digits LIKE ?")
            params.append(f"%{validate.phone_query(phone)}")
        if status is not None:
            clauses.append("status = ?")
            params.append(parse_status(status).value)
        return self._select(clauses, params, validate.limit(limit))

    def list_cases(self, limit: int = 50) -> list[Case]:
        return self._select([], [], validate.limit(limit))

    def _select(self, clauses: list[str], params: list[object], limit: int) -> list[Case]:
        where = " AND ".join(clauses) or "1"  # clauses are fixed strings; values are bound

        def run(conn: sqlite3.Connection) -> list[Case]:
            nums = conn.execute(
                f"SELECT num FROM cases WHERE {where} ORDER BY updated_at DESC, num DESC LIMIT ?",
                [*params, limit],
            ).fetchall()
            return [_load(conn, n) for (n,) in nums]

        return db.read(self.path, run)

    # ---------------------------------------------------------------- writes

    def create_case(
        self,
        *,
        customer_name: str,
        phone: str | None = None,
        email: str | None = None,
        device_type: DeviceType | str,
        symptom: str,
        actor: str = "agent",
    ) -> Case:
        name = validate.customer_name(customer_name)
        phone = validate.phone(phone)
        email = validate.email(email)
        device = parse_device_type(device_type)
        symptom = validate.text(symptom, what="symptom description", field="symptom")
        actor = validate.actor(actor)

        def tx(conn: sqlite3.Connection) -> Case:
            # Safe under BEGIN IMMEDIATE: no other writer can allocate between this read
            # and the insert. Cases are never deleted, so numbers are never reused.
            (num,) = conn.execute(
                "SELECT COALESCE(MAX(num), ?) + 1 FROM cases", (FIRST_NUMBER - 1,)
            ).fetchone()
            now = _now()
            conn.execute(
                "INSERT INTO cases (num, customer_name, name_key, phone, phone_digits, email,"
                " device_type, symptom, status, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    num,
                    name,
                    name_key(name),
                    phone,
                    phone_digits(phone) if phone else None,
                    email,
                    device.value,
                    symptom,
                    CaseStatus.RECEIVED.value,
                    now,
                    now,
                ),
            )
            _log(conn, num, now, actor, "created", None, CaseStatus.RECEIVED.value)
            return _load(conn, num)

        return db.write(self.path, tx)

    def update_status(
        self, case_id: str, new_status: CaseStatus | str, *, actor: str = "agent"
    ) -> Case:
        target = parse_status(new_status)
        actor = validate.actor(actor)

        def change(conn: sqlite3.Connection, row: sqlite3.Row, now: str) -> None:
            current = _require_transition(row, target)
            if target is CaseStatus.QUOTED and row["quote_yen"] is None:
                raise WrongState(
                    _id(row),
                    current,
                    f"{_id(row)} has no quote yet; set the quote amount and it will move "
                    "to 'quoted' by itself.",
                )
            _update(conn, row, now, actor, {"status": target.value})

        return self._mutate(case_id, change)

    def cancel_case(self, case_id: str, *, reason: str, actor: str = "agent") -> Case:
        reason = validate.text(reason, what="cancellation reason", field="reason")
        actor = validate.actor(actor)

        def change(conn: sqlite3.Connection, row: sqlite3.Row, now: str) -> None:
            _require_transition(row, CaseStatus.CANCELLED)
            _update(conn, row, now, actor, {"status": CaseStatus.CANCELLED.value})
            _add_note(conn, row["num"], now, actor, f"Cancelled: {reason}")

        return self._mutate(case_id, change)

    def add_note(self, case_id: str, text: str, *, actor: str = "agent") -> Case:
        """Allowed in every status, including closed cases (calls keep happening)."""
        text = validate.text(text, what="note", field="text")
        actor = validate.actor(actor)

        def change(conn: sqlite3.Connection, row: sqlite3.Row, now: str) -> None:
            _add_note(conn, row["num"], now, actor, text)
            conn.execute("UPDATE cases SET updated_at = ? WHERE num = ?", (now, row["num"]))

        return self._mutate(case_id, change)

    def set_quote(self, case_id: str, amount_yen: int, *, actor: str = "agent") -> Case:
        """Quote while diagnosing (moves the case to 'quoted') or revise it while 'quoted'.

        Once approved the price is agreed; changing it needs a human decision, so we refuse.
        """
        amount = validate.quote_yen(amount_yen)
        actor = validate.actor(actor)

        def change(conn: sqlite3.Connection, row: sqlite3.Row, now: str) -> None:
            current = CaseStatus(row["status"])
            if current not in QUOTABLE:
                raise WrongState(
                    _id(row),
                    current,
                    f"{_id(row)} is '{current}'; a quote can only be set while it is "
                    "diagnosing or quoted.",
                )
            _update(conn, row, now, actor, {"quote_yen": amount, "status": CaseStatus.QUOTED.value})

        return self._mutate(case_id, change)

    def schedule_return(
        self,
        case_id: str,
        date: dt.date | str,
        *,
        kind: ReturnKind | str = "return",
        actor: str = "agent",
        today: dt.date | None = None,
    ) -> Case:
        """Set (or move) the date we send the device back ('return') or the customer
        collects it ('pickup'). Only for open cases; the date may not be in the past.

        ``today`` is the business's calendar day (the agent passes it in its configured
        time zone); by default the machine's local date."""
        day = validate.return_date(date, today=today or dt.date.today())
        kind_ = validate.return_kind(kind)
        actor = validate.actor(actor)

        def change(conn: sqlite3.Connection, row: sqlite3.Row, now: str) -> None:
            current = CaseStatus(row["status"])
            if not current.is_open:
                raise WrongState(
                    _id(row),
                    current,
                    f"{_id(row)} is '{current}', so no return or pickup can be scheduled.",
                )
            _update(conn, row, now, actor, {"return_date": day.isoformat(), "return_kind": kind_})

        return self._mutate(case_id, change)

    def _mutate(self, case_id: str, change: _Change) -> Case:
        """Read-modify-write one case inside a single BEGIN IMMEDIATE transaction."""
        num = _case_number(case_id)

        def tx(conn: sqlite3.Connection) -> Case:
            row = conn.execute("SELECT * FROM cases WHERE num = ?", (num,)).fetchone()
            if row is None:
                raise CaseNotFound(format_case_id(num))
            change(conn, row, _now())
            return _load(conn, num)

        return db.write(self.path, tx)


# ------------------------------------------------------------------- helpers


def _given(value: str | None) -> str | None:
    return value if value and value.strip() else None


def _case_number(case_id: str) -> int:
    num = parse_case_id(str(case_id))
    if num is None:
        raise CaseNotFound(
            str(case_id), f"'{case_id}' isn't a case number; case numbers look like R-1042."
        )
    return num


def _id(row: sqlite3.Row) -> str:
    return format_case_id(row["num"])


def _require_transition(row: sqlite3.Row, target: CaseStatus) -> CaseStatus:
    current = CaseStatus(row["status"])
    allowed = next_states(current)
    if target not in allowed:
        raise IllegalTransition(_id(row), current, target, allowed)
    return current


def _update(
    conn: sqlite3.Connection, row: sqlite3.Row, now: str, actor: str, fields: dict[str, object]
) -> None:
    """Write changed fields and one history entry per field.

    Optimistic guard: the UPDATE only applies if every field still holds the value we
    read. BEGIN IMMEDIATE already makes that certain; the guard keeps it true should a
    caller ever run this in a deferred transaction, turning a lost update into a retry.
    Field names come from this module only, never from input, so formatting them is safe.
    """
    changed = {k: v for k, v in fields.items() if row[k] != v}
    if not changed:
        return
    sets = ", ".join(f"{k} = ?" for k in changed)
    guards = " AND ".join(f"{k} IS ?" for k in changed)
    cur = conn.execute(
        f"UPDATE cases SET {sets}, updated_at = ? WHERE num = ? AND {guards}",
        [*changed.values(), now, row["num"], *(row[k] for k in changed)],
    )
    if cur.rowcount != 1:
        raise db.Conflict(f"{_id(row)} changed concurrently")
    for key, new in changed.items():
        _log(conn, row["num"], now, actor, key, row[key], new)


def _add_note(conn: sqlite3.Connection, num: int, now: str, actor: str, text: str) -> None:
    conn.execute(
        "INSERT INTO notes (case_num, at, author, text) VALUES (?, ?, ?, ?)",
        (num, now, actor, text),
    )
    _log(conn, num, now, actor, "note", None, text)


def _log(
    conn: sqlite3.Connection,
    num: int,
    now: str,
    actor: str,
    action: str,
    old: object,
    new: object,
) -> None:
    conn.execute(
        "INSERT INTO history (case_num, at, actor, action, old, new) VALUES (?, ?, ?, ?, ?, ?)",
        (
            num,
            now,
            actor,
            action,
            None if old is None else str(old),
            None if new is None else str(new),
        ),
    )


def _load(conn: sqlite3.Connection, num: int) -> Case:
    row = conn.execute("SELECT * FROM cases WHERE num = ?", (num,)).fetchone()
    if row is None:
        raise CaseNotFound(format_case_id(num))
    notes = conn.execute(
        "SELECT at, author, text FROM notes WHERE case_num = ? ORDER BY id", (num,)
    ).fetchall()
    history = conn.execute(
        "SELECT at, actor, action, old, new FROM history WHERE case_num = ? ORDER BY id",
        (num,),
    ).fetchall()
    return Case(
        id=format_case_id(num),
        customer_name=row["customer_name"],
        phone=row["phone"],
        email=row["email"],
        device_type=DeviceType(row["device_type"]),
        symptom=row["symptom"],
        status=CaseStatus(row["status"]),
        quote_yen=row["quote_yen"],
        notes=tuple(
            Note(at=dt.datetime.fromisoformat(n["at"]), author=n["author"], text=n["text"])
            for n in notes
        ),
        return_date=dt.date.fromisoformat(row["return_date"]) if row["return_date"] else None,
        return_kind=row["return_kind"],
        created_at=dt.datetime.fromisoformat(row["created_at"]),
        updated_at=dt.datetime.fromisoformat(row["updated_at"]),
        history=tuple(
            HistoryEntry(
                at=dt.datetime.fromisoformat(h["at"]),
                actor=h["actor"],
                action=h["action"],
                old=h["old"],
                new=h["new"],
            )
            for h in history
        ),
    )

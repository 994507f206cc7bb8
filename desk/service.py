"""The service desk: every operation the voice agent (or an operator) can perform.

Each public method is synchronous and self-contained: it validates its input, then runs
one short transaction (see desk.db), so callers may use it from any thread or process.

Every write accepts:
- ``actor``: who makes the change ('agent', 'staff:alice'); recorded in the history.
- ``idempotency_key``: the agent passes f"{room}/{function_call_id}". The first write
  with a key stores its result in the same transaction; a repeat returns that result
  (``Case.replayed``) without writing again. A key reused for another change (other
  operation, case or arguments) is refused with ``IdempotencyKeyReused``.
- ``guard``: a ``WriteGuard`` to cancel the write or give it a deadline; a stopped write
  is rolled back and raises ``DeskCancelled``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from desk import validate
from desk.calls import CallRecords
from desk.db import Conflict, SqliteStore, Store, Tx, open_store
from desk.devices import DeviceType, parse_device_type
from desk.errors import (
    AttachmentNotFound,
    CaseNotFound,
    IdempotencyKeyReused,
    IllegalTransition,
    InvalidInput,
    WrongState,
)
from desk.guard import WriteGuard
from desk.ids import FIRST_NUMBER, format_case_id, parse_case_id
from desk.migrations import SCHEMA_VERSION, migrate, schema_version
from desk.models import Attachment, Case, HistoryEntry, Note, Payment
from desk.names import SEPARATOR, name_key, query_terms
from desk.phones import phone_digits
from desk.status import CaseStatus, next_states, parse_status, reopen_target
from desk.validate import ReturnKind

# A change callback sees the current row (read under the write lock) and the timestamp.
_Change = Callable[[Tx, Any, str], None]

QUOTABLE = (CaseStatus.DIAGNOSING, CaseStatus.QUOTED)
IDEMPOTENCY_TTL = dt.timedelta(days=7)  # keys older than this are forgotten
DEDUPE_WINDOW_S = 600.0


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Desk:
    def __init__(self, store: Store, *, clock: Callable[[], dt.datetime] | None = None) -> None:
        """Use Desk.open(): it prepares the database first. ``clock`` (UTC-aware
        datetimes) stamps changes; the demo seeder backdates with it."""
        self.store = store
        self.clock = clock or _utcnow

    @classmethod
    def open(cls, target: str | os.PathLike[str]) -> Desk:
        """A path or ``sqlite:///path`` (the file and parent dirs are created, WAL
        enabled) or ``postgresql://...``; pending migrations are run."""
        store = open_store(target)
        if store.read(schema_version) != SCHEMA_VERSION:
            store.write(migrate)  # re-checks the version under the schema lock
        return cls(store)

    @property
    def path(self) -> Path | None:
        """The SQLite file, or None for PostgreSQL."""
        return self.store.path if isinstance(self.store, SqliteStore) else None

    def close(self) -> None:
        self.store.close()

    @property
    def calls(self) -> CallRecords:
        """Call records (desk/calls.py) on the same database."""
        return CallRecords(self.store, self.clock)

    def _now(self) -> str:
        return _stamp(self.clock())

    # ----------------------------------------------------------------- reads

    def get_case(self, case_id: str) -> Case:
        num = _case_number(case_id)
        return self.store.read(lambda tx: _load(tx, num))

    def find_cases(
        self,
        *,
        name: str | None = None,
        phone: str | None = None,
        status: CaseStatus | str | None = None,
        created_since: dt.datetime | None = None,
        created_before: dt.datetime | None = None,
        limit: int = 5,
    ) -> list[Case]:
        """Cases matching all given criteria, most recently updated first.

        name: every spoken word must match part of the name (see desk.names);
        phone: the given digits must end the stored number (so the last 4 digits work);
        created_since / created_before: opened at or after / before these instants
        (timezone-aware; a calendar day is [its midnight, the next midnight) in the
        business's time zone, which the caller knows and the desk doesn't).
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
        if created_since is not None:
            clauses.append("created_at >= ?")
            params.append(_stamp(validate.instant(created_since, field="created_since")))
        if created_before is not None:
            clauses.append("created_at < ?")
            params.append(_stamp(validate.instant(created_before, field="created_before")))
        return self._select(clauses, params, validate.limit(limit))

    def list_cases(self, limit: int = 50) -> list[Case]:
        return self._select([], [], validate.limit(limit))

    def _select(self, clauses: list[str], params: list[object], limit: int) -> list[Case]:
        where = " AND ".join(clauses) or "TRUE"  # clauses are fixed strings; values are bound

        def run(tx: Tx) -> list[Case]:
            nums = tx.execute(
                f"SELECT num FROM cases WHERE {where} ORDER BY updated_at DESC, num DESC LIMIT ?",
                [*params, limit],
            ).fetchall()
            return [_load(tx, n) for (n,) in nums]

        return self.store.read(run)

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
        idempotency_key: str | None = None,
        guard: WriteGuard | None = None,
        call_scope: str | None = None,
        dedupe_window_s: float = DEDUPE_WINDOW_S,
    ) -> Case:
        """Open a case in 'received'.

        ``call_scope`` (the agent passes the room / call id): if this call already opened
        a case for the same customer (same normalised name; same phone digits when both
        have one) and the same device type within ``dedupe_window_s`` seconds (0: never),
        that case is returned with ``existing=True`` and nothing is written. Cancelled
        cases don't count.
        """
        name = validate.customer_name(customer_name)
        phone = validate.phone(phone)
        email = validate.email(email)
        device = parse_device_type(device_type)
        symptom = validate.text(symptom, what="symptom description", field="symptom")
        actor = validate.actor(actor)
        scope = validate.call_scope(call_scope)
        window = validate.dedupe_window(dedupe_window_s)
        request = {"customer_name": name, "phone": phone, "email": email,
                   "device_type": device.value, "symptom": symptom, "actor": actor,
                   "call_scope": scope}  # fmt: skip

        def body(tx: Tx, now: str) -> Case:
            # Serialise creates (SQLite: BEGIN IMMEDIATE already does): the duplicate
            # check and the number allocation below must see every earlier create.
            tx.lock("cases")
            if scope is not None and window > 0:
                found = _same_call_duplicate(tx, scope, name, phone, device, now, window)
                if found is not None:
                    return dataclasses.replace(found, existing=True)
            # Cases are never deleted, so numbers are never reused.
            (num,) = tx.execute(
                "SELECT COALESCE(MAX(num), ?) + 1 FROM cases", (FIRST_NUMBER - 1,)
            ).fetchone()
            tx.execute(
                "INSERT INTO cases (num, customer_name, name_key, phone, phone_digits, email,"
                " device_type, symptom, status, created_at, updated_at, call_scope)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                    scope,
                ),
            )
            _log(tx, num, now, actor, "created", None, CaseStatus.RECEIVED.value)
            return _load(tx, num)

        return self._write("create_case", request, body, key=idempotency_key, guard=guard)

    def update_status(
        self,
        case_id: str,
        new_status: CaseStatus | str,
        *,
        actor: str = "agent",
        idempotency_key: str | None = None,
        guard: WriteGuard | None = None,
    ) -> Case:
        target = parse_status(new_status)
        actor = validate.actor(actor)

        def change(tx: Tx, row: Any, now: str) -> None:
            current = _require_transition(row, target)
            if target is CaseStatus.QUOTED and row["quote_yen"] is None:
                raise WrongState(
                    _id(row),
                    current,
                    f"{_id(row)} has no quote yet; set the quote amount and it will move "
                    "to 'quoted' by itself.",
                )
            _update(tx, row, now, actor, {"status": target.value})

        request = {"status": target.value, "actor": actor}
        return self._mutate("update_status", case_id, request, change, idempotency_key, guard)

    def cancel_case(
        self,
        case_id: str,
        *,
        reason: str,
        actor: str = "agent",
        idempotency_key: str | None = None,
        guard: WriteGuard | None = None,
    ) -> Case:
        reason = validate.text(reason, what="cancellation reason", field="reason")
        actor = validate.actor(actor)

        def change(tx: Tx, row: Any, now: str) -> None:
            _require_transition(row, CaseStatus.CANCELLED)
            _update(tx, row, now, actor, {"status": CaseStatus.CANCELLED.value})
            _add_note(tx, row["num"], now, actor, f"Cancelled: {reason}")

        request = {"reason": reason, "actor": actor}
        return self._mutate("cancel_case", case_id, request, change, idempotency_key, guard)

    def add_note(
        self,
        case_id: str,
        text: str,
        *,
        actor: str = "agent",
        idempotency_key: str | None = None,
        guard: WriteGuard | None = None,
    ) -> Case:
        """Allowed in every status, including closed cases (calls keep happening)."""
        text = validate.text(text, what="note", field="text")
        actor = validate.actor(actor)

        def change(tx: Tx, row: Any, now: str) -> None:
            _add_note(tx, row["num"], now, actor, text)
            tx.execute("UPDATE cases SET updated_at = ? WHERE num = ?", (now, row["num"]))

        request = {"text": text, "actor": actor}
        return self._mutate("add_note", case_id, request, change, idempotency_key, guard)

    def set_quote(
        self,
        case_id: str,
        amount_yen: int,
        *,
        actor: str = "agent",
        idempotency_key: str | None = None,
        guard: WriteGuard | None = None,
    ) -> Case:
        """Quote while diagnosing (moves the case to 'quoted') or revise it while 'quoted'.

        Once approved the price is agreed; changing it needs a human decision, so we refuse.
        """
        amount = validate.quote_yen(amount_yen)
        actor = validate.actor(actor)

        def change(tx: Tx, row: Any, now: str) -> None:
            current = CaseStatus(row["status"])
            if current not in QUOTABLE:
                raise WrongState(
                    _id(row),
                    current,
                    f"{_id(row)} is '{current}'; a quote can only be set while it is "
                    "diagnosing or quoted.",
                )
            paid = _paid(tx, row["num"])
            if amount < paid:
                raise WrongState(
                    _id(row),
                    current,
                    f"{paid:,} yen has already been paid on {_id(row)}; the quote can't be "
                    "less than that.",
                )
            _update(tx, row, now, actor, {"quote_yen": amount, "status": CaseStatus.QUOTED.value})

        request = {"amount_yen": amount, "actor": actor}
        return self._mutate("set_quote", case_id, request, change, idempotency_key, guard)

    def schedule_return(
        self,
        case_id: str,
        date: dt.date | str,
        *,
        kind: ReturnKind | str = "return",
        actor: str = "agent",
        today: dt.date | None = None,
        idempotency_key: str | None = None,
        guard: WriteGuard | None = None,
    ) -> Case:
        """Set (or move) the date we send the device back ('return') or the customer
        collects it ('pickup'). Only for open cases; the date may not be in the past.

        ``today`` is the business's calendar day (the agent passes it in its configured
        time zone); by default the machine's local date."""
        day = validate.return_date(date, today=today or dt.date.today())
        kind_ = validate.return_kind(kind)
        actor = validate.actor(actor)

        def change(tx: Tx, row: Any, now: str) -> None:
            current = CaseStatus(row["status"])
            if not current.is_open:
                raise WrongState(
                    _id(row),
                    current,
                    f"{_id(row)} is '{current}', so no return or pickup can be scheduled.",
                )
            _update(tx, row, now, actor, {"return_date": day.isoformat(), "return_kind": kind_})

        request = {"date": day.isoformat(), "kind": kind_, "actor": actor}
        return self._mutate("schedule_return", case_id, request, change, idempotency_key, guard)

    def update_contact(
        self,
        case_id: str,
        *,
        phone: str | None = None,
        email: str | None = None,
        actor: str = "agent",
        idempotency_key: str | None = None,
        guard: WriteGuard | None = None,
    ) -> Case:
        """Change the customer's phone number and/or email address on a case, checked as
        at intake. None leaves a field as it is; a blank string removes it. Allowed in
        every status (a customer may move after the case closed)."""
        if phone is None and email is None:
            raise InvalidInput("Please give the new phone number or email address.", field="phone")
        fields: dict[str, object] = {}
        if phone is not None:
            fields["phone"] = validate.phone(phone)
        if email is not None:
            fields["email"] = validate.email(email)
        actor = validate.actor(actor)

        def change(tx: Tx, row: Any, now: str) -> None:
            _update(tx, row, now, actor, fields)
            if "phone" in fields:  # the lookup key follows the number, quietly
                new = fields["phone"]
                digits = phone_digits(str(new)) if new else None
                tx.execute("UPDATE cases SET phone_digits = ? WHERE num = ?", (digits, row["num"]))

        request = {**fields, "actor": actor}
        return self._mutate("update_contact", case_id, request, change, idempotency_key, guard)

    def assign_technician(
        self,
        case_id: str,
        technician: str,
        *,
        actor: str = "agent",
        idempotency_key: str | None = None,
        guard: WriteGuard | None = None,
    ) -> Case:
        """Name the technician who works on an open case (free text; replaces the one
        assigned before). Closed cases are refused: reopen them first."""
        name = validate.technician(technician)
        actor = validate.actor(actor)

        def change(tx: Tx, row: Any, now: str) -> None:
            current = CaseStatus(row["status"])
            if not current.is_open:
                raise WrongState(
                    _id(row),
                    current,
                    f"{_id(row)} is '{current}', so no technician can be assigned; "
                    "reopen it first.",
                )
            _update(tx, row, now, actor, {"technician": name})

        request = {"technician": name, "actor": actor}
        return self._mutate("assign_technician", case_id, request, change, idempotency_key, guard)

    def reopen_case(
        self,
        case_id: str,
        *,
        reason: str,
        actor: str = "agent",
        idempotency_key: str | None = None,
        guard: WriteGuard | None = None,
    ) -> Case:
        """Reopen a closed case (see desk.status.reopen_target): 'returned' goes back to
        'ready'; 'cancelled' goes back to the status it had when it was cancelled. The
        reason becomes a note. Open cases are refused."""
        reason = validate.text(reason, what="reason for reopening", field="reason")
        actor = validate.actor(actor)

        def change(tx: Tx, row: Any, now: str) -> None:
            current = CaseStatus(row["status"])
            if current.is_open:
                raise WrongState(
                    _id(row),
                    current,
                    f"{_id(row)} is '{current}', which is still open; only a returned or "
                    "cancelled case can be reopened.",
                )
            target = reopen_target(current, _status_before_cancel(tx, row["num"]))
            _update(tx, row, now, actor, {"status": target.value})
            _add_note(tx, row["num"], now, actor, f"Reopened ({current} → {target}): {reason}")

        request = {"reason": reason, "actor": actor}
        return self._mutate("reopen_case", case_id, request, change, idempotency_key, guard)

    def record_payment(
        self,
        case_id: str,
        amount_yen: int | str,
        *,
        method: str,
        actor: str = "agent",
        idempotency_key: str | None = None,
        guard: WriteGuard | None = None,
    ) -> Case:
        """Record money received against the case's quote; ``Case.balance_yen`` is what
        is left. Refused without a quote, on a cancelled case, and above the balance."""
        amount = validate.payment_yen(amount_yen)
        method_ = validate.payment_method(method)
        actor = validate.actor(actor)

        def change(tx: Tx, row: Any, now: str) -> None:
            current = CaseStatus(row["status"])
            if current is CaseStatus.CANCELLED:
                raise WrongState(
                    _id(row), current, f"{_id(row)} was cancelled, so no payment can be recorded."
                )
            quote = row["quote_yen"]
            if quote is None:
                raise WrongState(
                    _id(row),
                    current,
                    f"{_id(row)} has no quote yet, so there is nothing to pay against.",
                )
            balance = quote - _paid(tx, row["num"])
            if balance <= 0:
                raise WrongState(
                    _id(row), current, f"{_id(row)} is already paid in full ({quote:,} yen)."
                )
            if amount > balance:
                raise WrongState(
                    _id(row),
                    current,
                    f"{amount:,} yen is more than what is left to pay on {_id(row)}: "
                    f"{balance:,} yen of the {quote:,} yen quote. Nothing was recorded.",
                )
            tx.execute(
                "INSERT INTO payments (case_num, at, actor, amount_yen, method)"
                " VALUES (?, ?, ?, ?, ?)",
                (row["num"], now, actor, amount, method_),
            )
            _log(tx, row["num"], now, actor, "payment", None, f"{amount:,} yen by {method_}")
            tx.execute("UPDATE cases SET updated_at = ? WHERE num = ?", (now, row["num"]))

        request = {"amount_yen": amount, "method": method_, "actor": actor}
        return self._mutate("record_payment", case_id, request, change, idempotency_key, guard)

    def attach_file(
        self,
        case_id: str,
        *,
        name: str,
        data: bytes,
        actor: str = "agent",
        idempotency_key: str | None = None,
        guard: WriteGuard | None = None,
    ) -> Case:
        """Attach a photo (JPEG, PNG, GIF, WebP or HEIC, told by its bytes; at most
        validate.MAX_ATTACHMENT_BYTES) to a case, in every status. The bytes are stored
        in the database with name, type, size and SHA-256; read them with get_attachment."""
        name = validate.attachment_name(name)
        raw, content_type = validate.attachment(data)
        digest = hashlib.sha256(raw).hexdigest()
        actor = validate.actor(actor)

        def change(tx: Tx, row: Any, now: str) -> None:
            tx.execute(
                "INSERT INTO attachments (case_num, at, actor, name, content_type, size,"
                " sha256, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (row["num"], now, actor, name, content_type, len(raw), digest, raw),
            )
            _log(tx, row["num"], now, actor, "attachment", None,
                 f"{name} ({content_type}, {len(raw):,} bytes)")  # fmt: skip
            tx.execute("UPDATE cases SET updated_at = ? WHERE num = ?", (now, row["num"]))

        request = {"name": name, "sha256": digest, "size": len(raw), "actor": actor}
        return self._mutate("attach_file", case_id, request, change, idempotency_key, guard)

    def get_attachment(self, case_id: str, attachment_id: int | str) -> tuple[Attachment, bytes]:
        """One attached file of a case: its record and its bytes."""
        num = _case_number(case_id)
        try:
            att_id = int(attachment_id)
        except (TypeError, ValueError):
            raise AttachmentNotFound(format_case_id(num)) from None

        def run(tx: Tx) -> tuple[Attachment, bytes]:
            found = tx.execute(
                "SELECT id, at, actor, name, content_type, size, sha256, data FROM attachments"
                " WHERE case_num = ? AND id = ?",
                (num, att_id),
            ).fetchone()
            if found is None:
                if tx.execute("SELECT 1 FROM cases WHERE num = ?", (num,)).fetchone() is None:
                    raise CaseNotFound(format_case_id(num))
                raise AttachmentNotFound(format_case_id(num))
            return _attachment(found), bytes(found["data"])

        return self.store.read(run)

    def _mutate(
        self,
        operation: str,
        case_id: str,
        request: dict[str, Any],
        change: _Change,
        key: str | None,
        guard: WriteGuard | None,
    ) -> Case:
        """Read-modify-write one case; the row is locked before it is read."""
        num = _case_number(case_id)

        def body(tx: Tx, now: str) -> Case:
            row = tx.execute("SELECT * FROM cases WHERE num = ?{for_update}", (num,)).fetchone()
            if row is None:
                raise CaseNotFound(format_case_id(num))
            change(tx, row, now)
            return _load(tx, num)

        return self._write(operation, {"case": num, **request}, body, key=key, guard=guard)

    def _write(
        self,
        operation: str,
        request: dict[str, Any],
        body: Callable[[Tx, str], Case],
        *,
        key: str | None,
        guard: WriteGuard | None,
    ) -> Case:
        """One write transaction: claim the idempotency key (or replay its result), run
        ``body``, store its result under the key; all or nothing."""
        key = validate.idempotency_key(key)
        fingerprint = _fingerprint(operation, request)

        def tx_fn(tx: Tx) -> Case:
            now = self._now()
            if key is not None:
                replay = _claim_key(tx, key, operation, fingerprint, now)
                if replay is not None:
                    tx.skip_guard = True  # nothing new to stop: the first write committed
                    return replay
            case = body(tx, now)
            if key is not None:
                _save_result(tx, key, case)
            return case

        return self.store.write(tx_fn, guard)


# ------------------------------------------------------------------- helpers


def _stamp(at: dt.datetime) -> str:
    """How instants are stored: fixed width (always microseconds, always UTC), so the
    text sorts (and compares) by time."""
    return at.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _given(value: str | None) -> str | None:
    return value if value and value.strip() else None


def _case_number(case_id: str) -> int:
    num = parse_case_id(str(case_id))
    if num is None:
        # Don't repeat the text: callers sometimes give a phone number here.
        raise CaseNotFound(str(case_id), "That isn't a case number; case numbers look like R-1042.")
    return num


def _id(row: Any) -> str:
    return format_case_id(row["num"])


def _require_transition(row: Any, target: CaseStatus) -> CaseStatus:
    current = CaseStatus(row["status"])
    allowed = next_states(current)
    if target not in allowed:
        raise IllegalTransition(_id(row), current, target, allowed)
    return current


def _fingerprint(operation: str, request: dict[str, Any]) -> str:
    text = json.dumps([operation, request], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _claim_key(tx: Tx, key: str, operation: str, fingerprint: str, now: str) -> Case | None:
    """Claim ``key`` for this write (None), or return the result it already holds.

    The claim is an INSERT, so two writers with the same key can't both get it: on
    SQLite the write lock serialises them; on PostgreSQL the second INSERT waits for the
    first transaction and then does nothing (or inserts, if the first rolled back)."""
    cur = tx.execute(
        "INSERT INTO idempotency_keys (key, operation, request, at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (key) DO NOTHING",
        (key, operation, fingerprint, now),
    )
    if cur.rowcount == 1:
        cutoff = (dt.datetime.fromisoformat(now) - IDEMPOTENCY_TTL).isoformat(
            timespec="microseconds"
        )
        tx.execute("DELETE FROM idempotency_keys WHERE at < ?", (cutoff,))
        return None
    row = tx.execute(
        "SELECT operation, request, result FROM idempotency_keys WHERE key = ?", (key,)
    ).fetchone()
    if row is None or row["result"] is None:
        raise Conflict("idempotency key vanished or unfinished")  # pruned meanwhile: retry
    if row["operation"] != operation or row["request"] != fingerprint:
        raise IdempotencyKeyReused(key, row["operation"])
    stored = json.loads(row["result"])
    case = Case.from_dict(stored["case"])
    return dataclasses.replace(case, replayed=True, existing=bool(stored.get("existing")))


def _save_result(tx: Tx, key: str, case: Case) -> None:
    result = json.dumps({"case": case.to_dict(), "existing": case.existing}, ensure_ascii=False)
    tx.execute(
        "UPDATE idempotency_keys SET result = ?, case_num = ? WHERE key = ?",
        (result, parse_case_id(case.id), key),
    )


def _same_name(key_a: str, key_b: str) -> bool:
    """Same customer name: equal folded form or equal loose romaji (see desk.names)."""
    fold_a, _, romaji_a = key_a.partition(SEPARATOR)
    fold_b, _, romaji_b = key_b.partition(SEPARATOR)
    return (bool(fold_a) and fold_a == fold_b) or (bool(romaji_a) and romaji_a == romaji_b)


def _same_call_duplicate(
    tx: Tx,
    scope: str,
    name: str,
    phone: str | None,
    device: DeviceType,
    now: str,
    window_s: float,
) -> Case | None:
    since = dt.datetime.fromisoformat(now) - dt.timedelta(seconds=window_s)
    key = name_key(name)
    digits = phone_digits(phone) if phone else None
    rows = tx.execute(
        "SELECT num, name_key, phone_digits, device_type, status, created_at FROM cases"
        " WHERE call_scope = ? ORDER BY num DESC",
        (scope,),
    ).fetchall()
    for row in rows:
        if (
            dt.datetime.fromisoformat(row["created_at"]) >= since
            and row["status"] != CaseStatus.CANCELLED.value
            and row["device_type"] == device.value
            and _same_name(row["name_key"], key)
            and not (digits and row["phone_digits"] and digits != row["phone_digits"])
        ):
            return _load(tx, row["num"])
    return None


def _update(tx: Tx, row: Any, now: str, actor: str, fields: dict[str, object]) -> None:
    """Write changed fields and one history entry per field.

    Optimistic guard: the UPDATE only applies if every field still holds the value we
    read. The row lock already makes that certain; the guard keeps it true should a
    caller ever run this without one, turning a lost update into a retry.
    Field names come from this module only, never from input, so formatting them is safe.
    """
    changed = {k: v for k, v in fields.items() if row[k] != v}
    if not changed:
        return
    sets = ", ".join(f"{k} = ?" for k in changed)
    guards = " AND ".join(f"{k} {{is}} ?" for k in changed)
    cur = tx.execute(
        f"UPDATE cases SET {sets}, updated_at = ? WHERE num = ? AND {guards}",
        [*changed.values(), now, row["num"], *(row[k] for k in changed)],
    )
    if cur.rowcount != 1:
        raise Conflict(f"{_id(row)} changed concurrently")
    for key, new in changed.items():
        _log(tx, row["num"], now, actor, key, row[key], new)


def _add_note(tx: Tx, num: int, now: str, actor: str, text: str) -> None:
    tx.execute(
        "INSERT INTO notes (case_num, at, author, text) VALUES (?, ?, ?, ?)",
        (num, now, actor, text),
    )
    _log(tx, num, now, actor, "note", None, text)


def _log(tx: Tx, num: int, now: str, actor: str, action: str, old: object, new: object) -> None:
    tx.execute(
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


def _paid(tx: Tx, num: int) -> int:
    (total,) = tx.execute(
        "SELECT COALESCE(SUM(amount_yen), 0) FROM payments WHERE case_num = ?", (num,)
    ).fetchone()
    return int(total)


def _status_before_cancel(tx: Tx, num: int) -> CaseStatus | None:
    """The status a cancelled case had when it was cancelled (its latest cancellation)."""
    found = tx.execute(
        "SELECT old FROM history WHERE case_num = ? AND action = 'status' AND new = ?"
        " ORDER BY id DESC LIMIT 1",
        (num, CaseStatus.CANCELLED.value),
    ).fetchone()
    try:
        return CaseStatus(found["old"]) if found is not None and found["old"] else None
    except ValueError:
        return None


def _attachment(row: Any) -> Attachment:
    return Attachment(
        id=int(row["id"]),
        at=dt.datetime.fromisoformat(row["at"]),
        actor=row["actor"],
        name=row["name"],
        content_type=row["content_type"],
        size=int(row["size"]),
        sha256=row["sha256"],
    )


def _load(tx: Tx, num: int) -> Case:
    row = tx.execute("SELECT * FROM cases WHERE num = ?", (num,)).fetchone()
    if row is None:
        raise CaseNotFound(format_case_id(num))
    notes = tx.execute(
        "SELECT at, author, text FROM notes WHERE case_num = ? ORDER BY id", (num,)
    ).fetchall()
    history = tx.execute(
        "SELECT at, actor, action, old, new FROM history WHERE case_num = ? ORDER BY id",
        (num,),
    ).fetchall()
    payments = tx.execute(
        "SELECT at, actor, amount_yen, method FROM payments WHERE case_num = ? ORDER BY id",
        (num,),
    ).fetchall()
    attachments = tx.execute(
        "SELECT id, at, actor, name, content_type, size, sha256 FROM attachments"
        " WHERE case_num = ? ORDER BY id",
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
        technician=row["technician"],
        payments=tuple(
            Payment(
                at=dt.datetime.fromisoformat(p["at"]),
                actor=p["actor"],
                amount_yen=int(p["amount_yen"]),
                method=p["method"],
            )
            for p in payments
        ),
        attachments=tuple(_attachment(a) for a in attachments),
    )

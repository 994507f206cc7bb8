"""Service-desk domain for a data-recovery company: cases, lifecycle, lookup, history.

Plain Python on SQLite or PostgreSQL; no voice/LLM imports. ``Desk.open(path_or_url)``
then synchronous methods (call them via ``asyncio.to_thread``); each runs one transaction,
so threads and processes may share a database. Writes take an ``idempotency_key`` (a
repeat returns the first result) and a ``WriteGuard`` (cancel / deadline). Every error is
a ``DeskError`` whose message can be read aloud to the caller as-is.

Modules: status (lifecycle), devices, ids (R-1042), names/kana (name matching), phones,
validate, models (Case), migrations, db (stores, transactions, retries; SQLite),
pg (PostgreSQL), guard (WriteGuard), service (Desk), seed (demo data), cli.
"""

from desk.db import default_db_path, default_db_target
from desk.devices import DeviceType, parse_device_type
from desk.errors import (
    AttachmentNotFound,
    CaseNotFound,
    DeskBusy,
    DeskCancelled,
    DeskError,
    DeskUnavailable,
    IdempotencyKeyReused,
    IllegalTransition,
    InvalidInput,
    WrongState,
)
from desk.guard import WriteGuard
from desk.models import Attachment, Case, HistoryEntry, Note, Payment
from desk.service import Desk
from desk.status import CaseStatus, next_states, parse_status

__all__ = [
    "Attachment",
    "AttachmentNotFound",
    "Case",
    "CaseNotFound",
    "CaseStatus",
    "Desk",
    "DeskBusy",
    "DeskCancelled",
    "DeskError",
    "DeskUnavailable",
    "DeviceType",
    "HistoryEntry",
    "IdempotencyKeyReused",
    "IllegalTransition",
    "InvalidInput",
    "Note",
    "Payment",
    "WriteGuard",
    "WrongState",
    "default_db_path",
    "default_db_target",
    "next_states",
    "parse_device_type",
    "parse_status",
]

"""Service-desk domain for a data-recovery company: cases, lifecycle, lookup, history.

Plain Python on SQLite; no voice/LLM imports. ``Desk.open(path)`` then synchronous
methods (call them via ``asyncio.to_thread``); each uses its own short-lived connection
and one transaction, so threads and processes may share a database file. Every error is
a ``DeskError`` whose message can be read aloud to the caller as-is.

Modules: status (lifecycle), devices, ids (R-1042), names/kana (name matching), phones,
validate, models (Case), migrations, db (connections, retries), service (Desk), cli.
"""

from desk.db import default_db_path
from desk.devices import DeviceType, parse_device_type
from desk.errors import (
    CaseNotFound,
    DeskBusy,
    DeskError,
    IllegalTransition,
    InvalidInput,
    WrongState,
)
from desk.models import Case, HistoryEntry, Note
from desk.service import Desk
from desk.status import CaseStatus, next_states, parse_status

__all__ = [
    "Case",
    "CaseNotFound",
    "CaseStatus",
    "Desk",
    "DeskBusy",
    "DeskError",
    "DeviceType",
    "HistoryEntry",
    "IllegalTransition",
    "InvalidInput",
    "Note",
    "WrongState",
    "default_db_path",
    "next_states",
    "parse_device_type",
    "parse_status",
]

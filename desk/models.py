"""Immutable snapshots of a case as read from the store."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from desk.devices import DeviceType
from desk.status import CaseStatus
from desk.validate import ReturnKind


@dataclass(frozen=True, slots=True)
class Note:
    at: dt.datetime
    author: str
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "author": self.author, "text": self.text}


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One change. ``action`` is the field name that changed ('status', 'quote_yen',
    'return_date', 'return_kind') or an event ('created', 'note'); old/new are text."""

    at: dt.datetime
    actor: str
    action: str
    old: str | None
    new: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "old": self.old,
            "new": self.new,
        }


@dataclass(frozen=True, slots=True)
class Case:
    id: str
    customer_name: str
    phone: str | None
    email: str | None
    device_type: DeviceType
    symptom: str
    status: CaseStatus
    quote_yen: int | None
    notes: tuple[Note, ...]
    return_date: dt.date | None
    return_kind: ReturnKind | None
    created_at: dt.datetime
    updated_at: dt.datetime
    history: tuple[HistoryEntry, ...]

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-safe (strings, ints, None, lists, dicts)."""
        return {
            "id": self.id,
            "customer_name": self.customer_name,
            "phone": self.phone,
            "email": self.email,
            "device_type": self.device_type.value,
            "symptom": self.symptom,
            "status": self.status.value,
            "quote_yen": self.quote_yen,
            "notes": [n.to_dict() for n in self.notes],
            "return_date": self.return_date.isoformat() if self.return_date else None,
            "return_kind": self.return_kind,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "history": [h.to_dict() for h in self.history],
        }

    def summary(self) -> dict[str, Any]:
        """Short and speakable: what a caller wants to hear about their case."""
        return {
            "id": self.id,
            "customer": self.customer_name,
            "device": self.device_type.value,
            "status": self.status.value,
            "quote": f"{self.quote_yen:,} yen" if self.quote_yen is not None else None,
            "date": (
                f"{self.return_kind} on {self.return_date.isoformat()}"
                if self.return_date
                else None
            ),
        }

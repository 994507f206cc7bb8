"""Immutable snapshots of a case as read from the store.

``Case.replayed`` and ``Case.existing`` are not stored: they describe how a write
answered (see Desk), not the case itself, so ``to_dict`` leaves them out.
"""

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

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Note:
        return cls(at=dt.datetime.fromisoformat(data["at"]), author=data["author"],
                   text=data["text"])  # fmt: skip


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One change. ``action`` is the field name that changed ('status', 'quote_yen',
    'return_date', 'return_kind') or an event ('created', 'note'); old/new are text.
    ``actor`` is who made the change, as the writer passed it ('agent', 'staff:alice')."""

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

    @property
    def changed_by(self) -> str:
        return self.actor

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HistoryEntry:
        return cls(
            at=dt.datetime.fromisoformat(data["at"]),
            actor=data["actor"],
            action=data["action"],
            old=data["old"],
            new=data["new"],
        )


@dataclass(frozen=True, slots=True)
class Payment:
    """Money received against the case's quote (whole yen)."""

    at: dt.datetime
    actor: str
    amount_yen: int
    method: str  # cash, card, bank_transfer, other

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "actor": self.actor,
                "amount_yen": self.amount_yen, "method": self.method}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Payment:
        return cls(at=dt.datetime.fromisoformat(data["at"]), actor=data["actor"],
                   amount_yen=data["amount_yen"], method=data["method"])  # fmt: skip


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file attached to a case (a photo of the device); the bytes are read apart
    (Desk.get_attachment)."""

    id: int
    at: dt.datetime
    actor: str
    name: str
    content_type: str
    size: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "at": self.at.isoformat(), "actor": self.actor,
                "name": self.name, "content_type": self.content_type, "size": self.size,
                "sha256": self.sha256}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Attachment:
        return cls(id=data["id"], at=dt.datetime.fromisoformat(data["at"]),
                   actor=data["actor"], name=data["name"], content_type=data["content_type"],
                   size=data["size"], sha256=data["sha256"])  # fmt: skip


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
    technician: str | None = None
    payments: tuple[Payment, ...] = ()
    attachments: tuple[Attachment, ...] = ()
    # How the write that returned this snapshot answered (never stored):
    replayed: bool = False  # a repeated idempotency key: the first result, nothing written
    existing: bool = False  # create_case found this case already opened in the same call

    @property
    def changed_by(self) -> str | None:
        """Who made the latest change."""
        return self.history[-1].actor if self.history else None

    @property
    def paid_yen(self) -> int:
        return sum(p.amount_yen for p in self.payments)

    @property
    def balance_yen(self) -> int | None:
        """What is left to pay on the quote (None without a quote)."""
        return None if self.quote_yen is None else self.quote_yen - self.paid_yen

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
            "technician": self.technician,
            "payments": [p.to_dict() for p in self.payments],
            "paid_yen": self.paid_yen,
            "balance_yen": self.balance_yen,
            "attachments": [a.to_dict() for a in self.attachments],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Case:
        """The inverse of ``to_dict`` (used to replay a stored result)."""
        return cls(
            id=data["id"],
            customer_name=data["customer_name"],
            phone=data["phone"],
            email=data["email"],
            device_type=DeviceType(data["device_type"]),
            symptom=data["symptom"],
            status=CaseStatus(data["status"]),
            quote_yen=data["quote_yen"],
            notes=tuple(Note.from_dict(n) for n in data["notes"]),
            return_date=dt.date.fromisoformat(data["return_date"]) if data["return_date"] else None,
            return_kind=data["return_kind"],
            created_at=dt.datetime.fromisoformat(data["created_at"]),
            updated_at=dt.datetime.fromisoformat(data["updated_at"]),
            history=tuple(HistoryEntry.from_dict(h) for h in data["history"]),
            # results stored before schema 6 have none of these
            technician=data.get("technician"),
            payments=tuple(Payment.from_dict(p) for p in data.get("payments", ())),
            attachments=tuple(Attachment.from_dict(a) for a in data.get("attachments", ())),
        )

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

"""Case status lifecycle: a straight line plus 'cancelled' from any open state."""

from __future__ import annotations

import unicodedata
from enum import StrEnum

from desk.errors import InvalidInput, join_or


class CaseStatus(StrEnum):
    RECEIVED = "received"
    DIAGNOSING = "diagnosing"
    QUOTED = "quoted"
    APPROVED = "approved"
    RECOVERING = "recovering"
    READY = "ready"
    RETURNED = "returned"
    CANCELLED = "cancelled"

    @property
    def is_open(self) -> bool:
        return self not in FINAL


# The happy path, in order; each state may only advance one step.
LIFECYCLE: tuple[CaseStatus, ...] = (
    CaseStatus.RECEIVED,
    CaseStatus.DIAGNOSING,
    CaseStatus.QUOTED,
    CaseStatus.APPROVED,
    CaseStatus.RECOVERING,
    CaseStatus.READY,
    CaseStatus.RETURNED,
)
FINAL: frozenset[CaseStatus] = frozenset({CaseStatus.RETURNED, CaseStatus.CANCELLED})


def next_states(status: CaseStatus) -> tuple[CaseStatus, ...]:
    """Legal targets from ``status`` (empty for final states)."""
    if status in FINAL:
        return ()
    following = LIFECYCLE[LIFECYCLE.index(status) + 1]
    return (following, CaseStatus.CANCELLED)


def reopen_target(status: CaseStatus, before_cancel: CaseStatus | None = None) -> CaseStatus:
    """Where a closed case goes when reopened: a returned case back to 'ready' (the
    device is with us again, to be returned once more); a cancelled case to the status
    it had when it was cancelled (``before_cancel``, from its history), or 'received'
    when that is unknown. Open cases have nowhere to reopen to: callers refuse them."""
    if status is CaseStatus.RETURNED:
        return CaseStatus.READY
    if status is CaseStatus.CANCELLED:
        if before_cancel is not None and before_cancel.is_open:
            return before_cancel
        return CaseStatus.RECEIVED
    raise ValueError(f"{status} is open")


# Spoken / Japanese forms the model may pass through verbatim.
_ALIASES: dict[str, CaseStatus] = {
    "new": CaseStatus.RECEIVED,
    "受付": CaseStatus.RECEIVED,
    "受付済み": CaseStatus.RECEIVED,
    "diagnosis": CaseStatus.DIAGNOSING,
    "indiagnosis": CaseStatus.DIAGNOSING,
    "診断中": CaseStatus.DIAGNOSING,
    "quote": CaseStatus.QUOTED,
    "見積": CaseStatus.QUOTED,
    "見積済み": CaseStatus.QUOTED,
    "見積もり済み": CaseStatus.QUOTED,
    "approve": CaseStatus.APPROVED,
    "承認": CaseStatus.APPROVED,
    "承認済み": CaseStatus.APPROVED,
    "recovery": CaseStatus.RECOVERING,
    "inrecovery": CaseStatus.RECOVERING,
    "復旧中": CaseStatus.RECOVERING,
    "readyforreturn": CaseStatus.READY,
    "readyforpickup": CaseStatus.READY,
    "準備完了": CaseStatus.READY,
    "返却準備完了": CaseStatus.READY,
    "return": CaseStatus.RETURNED,
    "返却済み": CaseStatus.RETURNED,
    "canceled": CaseStatus.CANCELLED,
    "cancel": CaseStatus.CANCELLED,
    "キャンセル": CaseStatus.CANCELLED,
}


def parse_status(value: CaseStatus | str) -> CaseStatus:
    """Accept the enum, its value in any case/spacing, or a few spoken/Japanese forms."""
    if isinstance(value, CaseStatus):
        return value
    key = "".join(ch for ch in unicodedata.normalize("NFKC", str(value)).casefold() if ch.isalnum())
    for status in CaseStatus:
        if key == status.value:
            return status
    if key in _ALIASES:
        return _ALIASES[key]
    raise InvalidInput(
        f"'{value}' is not a case status; use one of: {join_or(list(CaseStatus))}.",
        field="status",
    )

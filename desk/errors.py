"""Domain exceptions.

Every message is a complete sentence the voice model can read to the caller as-is,
so adapters can simply return ``str(err)``.
"""

from __future__ import annotations

from collections.abc import Sequence


def join_or(items: Sequence[str]) -> str:
    """'a', 'a or b', 'a, b or c' — reads naturally aloud."""
    words = [str(i) for i in items]
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " or " + words[-1]


class DeskError(Exception):
    """Base class for everything the service desk refuses."""


class InvalidInput(DeskError):
    """A value from the caller is missing or malformed; ``field`` names which one."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class CaseNotFound(DeskError):
    """No case matches the given id (or the text is not a case id at all)."""

    def __init__(self, query: str, message: str | None = None) -> None:
        super().__init__(message or f"There is no case {query}; please check the number.")
        self.query = query


class WrongState(DeskError):
    """The action is not possible while the case is in its current status."""

    def __init__(self, case_id: str, status: str, message: str) -> None:
        super().__init__(message)
        self.case_id = case_id
        self.status = status


class IllegalTransition(WrongState):
    """A status change the lifecycle does not allow; ``allowed`` lists the legal next states."""

    def __init__(self, case_id: str, status: str, target: str, allowed: Sequence[str]) -> None:
        if allowed:
            message = f"{case_id} is '{status}'; it can move to: {join_or(allowed)}."
        else:
            message = f"{case_id} is '{status}', which is final; its status can't change any more."
        super().__init__(case_id, status, message)
        self.target = target
        self.allowed = tuple(allowed)


class DeskBusy(DeskError):
    """The database stayed locked by other writers for longer than we are willing to wait."""

    def __init__(self) -> None:
        super().__init__("The case system is busy right now; please try again in a moment.")


class DeskUnavailable(DeskError):
    """The database could not be reached (PostgreSQL down, network gone).

    ``maybe_saved`` is true when the connection broke while the change was being
    committed: it may or may not have been saved (a retry with the same idempotency key is
    safe either way)."""

    def __init__(self, *, maybe_saved: bool = False) -> None:
        if maybe_saved:
            message = (
                "The case system stopped answering while saving, so I can't tell whether "
                "the change was saved; please check the case before trying again."
            )
        else:
            message = "The case system can't be reached right now; please try again in a moment."
        super().__init__(message)
        self.maybe_saved = maybe_saved


class DeskCancelled(DeskError):
    """A write was stopped (its WriteGuard was cancelled or ran past its deadline) before
    it was committed; it was rolled back, so nothing changed. ``reason`` is 'cancelled'
    or 'deadline'."""

    def __init__(self, reason: str = "cancelled") -> None:
        if reason == "deadline":
            message = (
                "The change took too long and was stopped before it was saved; nothing was changed."
            )
        else:
            message = "The change was stopped before it was saved; nothing was changed."
        super().__init__(message)
        self.reason = reason


class IdempotencyKeyReused(DeskError):
    """An idempotency key that already belongs to a different change (another operation,
    case or arguments). Nothing was written; the sentence names no personal data."""

    def __init__(self, key: str, operation: str) -> None:
        super().__init__(
            "That request was already used for a different change, so this change was not "
            "made; nothing was changed."
        )
        self.key = key
        self.operation = operation


class AttachmentNotFound(DeskError):
    """No such file on that case."""

    def __init__(self, case_id: str) -> None:
        super().__init__(f"There is no such file attached to {case_id}.")
        self.case_id = case_id

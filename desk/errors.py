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

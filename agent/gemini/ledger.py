"""The tool ledger: every function-call id is running, answered or cancelled, once.

Framework gap: the plugin forwards every tool response it is given, and after a resume it
re-sends the function outputs that its resumption snapshot does not cover. A queue carried
over a restart could add a second copy. Gemini treats an unknown or already-answered id as
an error, and a resumed session knows nothing of calls issued after its handle (a handle
is not resumable while calls are pending). The ledger decides, per response, whether it
goes to the server as a tool response, as text (the resumed server never issued that id,
but the caller's request did happen and its result must not be lost), or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Literal

Route = Literal["send", "as_text", "drop"]


class CallStatus(Enum):
    RUNNING = "running"
    ANSWERED = "answered"
    CANCELLED = "cancelled"


@dataclass
class LedgerEntry:
    call_id: str
    name: str
    connection: int  # the connection (server state) that issued it
    status: CallStatus = CallStatus.RUNNING
    answered_on: int | None = None  # connection that received the answer
    settled: bool = False  # a resumable handle arrived after the answer: the server kept it


class ToolLedger:
    def __init__(self) -> None:
        self.connection = 0
        self.entries: dict[str, LedgerEntry] = {}

    def connected(self) -> None:
        """A new connection: only calls it issues (or that were settled) are known to it."""
        self.connection += 1

    def issued(self, call_id: str, name: str) -> None:
        """A call the server now waits on (again, if it re-issues an id: answer it again;
        the desk's idempotency key makes the second run return the first result)."""
        self.entries[call_id] = LedgerEntry(call_id, name, self.connection)

    def cancelled(self, call_ids: list[str]) -> list[str]:
        """Mark withdrawn calls; returns those that were still running."""
        running = []
        for cid in call_ids:
            entry = self.entries.get(cid)
            if entry is not None and entry.status is CallStatus.RUNNING:
                entry.status = CallStatus.CANCELLED
                running.append(cid)
        return running

    def handle_received(self) -> None:
        """A resumable handle covers every answer given so far on this connection."""
        for entry in self.entries.values():
            if entry.status is CallStatus.ANSWERED and entry.answered_on == self.connection:
                entry.settled = True

    def settled_or_cancelled(self, call_id: str) -> bool:
        """True when an answer to this id would be dropped (withdrawn, or already given)."""
        entry = self.entries.get(call_id)
        if entry is None:
            return False
        if entry.status is CallStatus.CANCELLED:
            return True
        return entry.status is CallStatus.ANSWERED and (
            entry.settled or entry.answered_on == self.connection
        )

    def route(self, call_id: str) -> Route:
        """Where this function response goes; records the answer."""
        entry = self.entries.get(call_id)
        if entry is None:
            return "send"  # an id the plugin made up for an id-less call: nothing to track
        if entry.status is CallStatus.CANCELLED:
            return "drop"  # the model withdrew it; answering would be an unknown id
        if entry.status is CallStatus.ANSWERED:
            if entry.settled or entry.answered_on == self.connection:
                return "drop"  # this server state already has the answer
            entry.answered_on = self.connection
            return "as_text"  # answered on a connection whose state the resume dropped
        entry.status = CallStatus.ANSWERED
        entry.answered_on = self.connection
        return "send" if entry.connection == self.connection else "as_text"

    def outstanding(self) -> list[str]:
        """Calls the current server state is waiting on, or answers it has not settled."""
        return [
            e.call_id
            for e in self.entries.values()
            if (e.status is CallStatus.RUNNING and e.connection == self.connection)
            or (
                e.status is CallStatus.ANSWERED
                and e.answered_on == self.connection
                and not e.settled
            )
        ]

    def count(self, status: CallStatus) -> int:
        return sum(1 for e in self.entries.values() if e.status is status)

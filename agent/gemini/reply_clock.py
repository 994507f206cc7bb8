"""When a reply is due, and whether the silence since then has gone on too long.

Framework gap: the plugin waits on a live but silent socket forever. kaiwa decides that a
reply is due from what the worker itself observes (the caller's speech ended, a tool
response / client turn / generate_reply was sent) and recovers when no server message
follows within `bound_s` (see session.py). Plain class: no plugin, no socket, no clock of
its own (times are passed in), so every rule is unit-tested.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DueReason = Literal["caller_turn", "tool_response", "client_turn", "recovery"]


@dataclass
class Overdue:
    reason: str
    silent_for: float


class ReplyClock:
    def __init__(self, bound_s: float) -> None:
        self.bound_s = bound_s
        self.due_since: float | None = None
        self.reason: str | None = None
        self.generating = False  # a reply is streaming: its silence counts too (mid-reply)
        self.last_server_at = 0.0

    def due(self, reason: DueReason, now: float) -> None:
        """Something now expects an answer; the earliest pending reason is kept.

        The caller's turn restarts the clock at its end: Gemini can't answer before that.
        """
        if self.due_since is None or reason == "caller_turn":
            self.due_since = now
            self.reason = reason

    def caller_speaking(self) -> None:
        """While the caller speaks, Gemini rightly stays quiet: no reply is due yet."""
        if self.reason == "caller_turn":
            self.clear()

    def server_message(self, now: float) -> None:
        """Any message proves the socket is alive, but only a reply settles what is due."""
        self.last_server_at = now

    def reply_started(self, now: float) -> None:
        self.last_server_at = now
        self.generating = True
        self.clear()

    def reply_ended(self, now: float) -> None:
        """turnComplete (even an empty one), interrupted, or the turn ended on a tool call."""
        self.last_server_at = now
        self.generating = False
        self.clear()

    def clear(self) -> None:
        self.due_since = None
        self.reason = None

    def overdue(self, now: float) -> Overdue | None:
        if self.due_since is None and not self.generating:
            return None
        since = max(self.last_server_at, self.due_since or 0.0)
        silent = now - since
        if silent < self.bound_s:
            return None
        return Overdue(self.reason or "mid_reply", silent)

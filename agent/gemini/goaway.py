"""When to move to a new connection after Gemini's GoAway.

Framework gap: GoAway is a TODO in the plugin, which reconnects at once: mid-sentence, and
with function calls pending, when the handle it holds is not resumable (Google: a handle is
not resumable while calls are pending), so the response would go to a session that never
asked for it. kaiwa moves when the reply has ended, no call is outstanding and the answers
given are covered by a resumable handle; never past `timeLeft` minus a margin, since the
server closes the socket then.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GoAwayPlan:
    received_at: float
    deadline: float  # received_at + timeLeft - margin

    @classmethod
    def start(cls, now: float, time_left_s: float, margin_s: float) -> GoAwayPlan:
        return cls(now, now + max(0.0, time_left_s - margin_s))

    def should_move(self, now: float, *, generating: bool, outstanding_calls: int) -> bool:
        if now >= self.deadline:
            return True
        return not generating and outstanding_calls == 0

    def forced(self, now: float, *, generating: bool, outstanding_calls: int) -> bool:
        """Moving only because time ran out (the log says what may be lost)."""
        return now >= self.deadline and (generating or outstanding_calls > 0)


def seconds(value: object) -> float:
    """A proto3 JSON duration ("10s", "1.500s") or a timedelta, in seconds."""
    if value is None:
        return 0.0
    total = getattr(value, "total_seconds", None)
    if callable(total):
        return float(total())
    try:
        return float(str(value).rstrip("s"))
    except ValueError:
        return 0.0

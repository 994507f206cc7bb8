"""Confirmation before consequential actions (cancelling a case, setting a quote).

The first call of such a tool changes nothing: it stores a *pending action* for this
conversation and answers with a summary, a short `confirmation_id` and an instruction to
read the summary to the caller. `confirm_action(confirmation_id)` then performs it, but
only if

1. the id names an unexpired pending action of *this* session (so the model can't confirm
   something it never proposed, or something from another call), and
2. the caller has spoken or typed since that action was proposed (so the model can't
   propose and confirm in one breath; a generic `confirmed=true` flag would allow that).

"The caller said something" is observed from AgentSession events:
`user_input_transcribed` (Gemini's input transcription; with Gemini realtime in 1.8.9 the
interim ones arrive as the caller speaks and the final one only when the model's turn
ends, so any non-empty transcript counts) and `conversation_item_added` with a user
message (typed `lk.chat` text, and final transcripts). Limitation: Gemini can deliver
the tail of an earlier utterance's transcript late; that would count as input. The id
binding still guarantees the model confirms exactly what it read to the caller.
"""

from __future__ import annotations

import secrets
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from livekit.agents import ToolError

PENDING_TTL_S = 120.0
SAY = (
    "Read the summary to the caller and ask them to confirm. Call confirm_action with "
    "this confirmation_id only after they clearly say yes."
)


@dataclass
class PendingAction:
    id: str
    kind: str
    key: str  # e.g. the case id: a newer proposal for the same kind+key replaces this one
    summary: str
    perform: Callable[[], Awaitable[dict[str, Any]]]
    created_at: float
    expires_at: float


@dataclass
class Confirmations:
    """Pending actions and the caller's latest input, for one conversation."""

    ttl_s: float = PENDING_TTL_S
    clock: Callable[[], float] = time.monotonic
    pending: dict[str, PendingAction] = field(default_factory=dict)
    last_caller_input_at: float | None = None

    def caller_spoke(self) -> None:
        self.last_caller_input_at = self.clock()

    def propose(
        self,
        kind: str,
        key: str,
        summary: str,
        perform: Callable[[], Awaitable[dict[str, Any]]],
    ) -> dict[str, Any]:
        now = self.clock()
        self._expire(now)
        for pid, p in list(self.pending.items()):
            if p.kind == kind and p.key == key:
                del self.pending[pid]
        pid = "cf-" + secrets.token_hex(3)
        self.pending[pid] = PendingAction(
            pid, kind, key, summary, perform, created_at=now, expires_at=now + self.ttl_s
        )
        return {
            "needs_confirmation": True,
            "confirmation_id": pid,
            "summary": summary,
            "say": SAY,
        }

    def take(self, confirmation_id: str) -> PendingAction:
        """The pending action to perform now (removed), or a ToolError saying what's missing."""
        now = self.clock()
        self._expire(now)
        pid = confirmation_id.strip()
        action = self.pending.get(pid)
        if action is None:
            raise ToolError(
                f"There is no pending action with confirmation id '{confirmation_id}' (it may "
                "have expired or been done already). Nothing was changed. Ask for the action "
                "again to get a new summary to confirm."
            )
        if self.last_caller_input_at is None or self.last_caller_input_at <= action.created_at:
            raise ToolError(
                "Not confirmed yet: the caller hasn't answered since the summary was given. "
                f"Nothing was changed. Read this to the caller and wait for their yes: "
                f"{action.summary}"
            )
        del self.pending[pid]
        return action

    def _expire(self, now: float) -> None:
        for pid, p in list(self.pending.items()):
            if p.expires_at <= now:
                del self.pending[pid]


_by_session: weakref.WeakKeyDictionary[Any, Confirmations] = weakref.WeakKeyDictionary()


def for_session(session: Any) -> Confirmations:
    """This conversation's confirmations; the first use starts listening to the caller.

    Listening starts at the latest with the first proposal, which is all that matters:
    only input *after* a proposal can confirm it.
    """
    conf = _by_session.get(session)
    if conf is None:
        conf = Confirmations()
        _by_session[session] = conf
        ref = weakref.ref(conf)

        def on_transcribed(ev: Any) -> None:
            c = ref()
            if c is not None and str(getattr(ev, "transcript", "")).strip():
                c.caller_spoke()

        def on_item(ev: Any) -> None:
            c = ref()
            item = getattr(ev, "item", None)
            if c is not None and getattr(item, "role", None) == "user":
                c.caller_spoke()

        session.on("user_input_transcribed", on_transcribed)
        session.on("conversation_item_added", on_item)
    return conf

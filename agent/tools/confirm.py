"""Confirmation before consequential actions: only the caller's yes unlocks them.

The first call of such a tool changes nothing: it stores a *pending action* on the call
(CallState.confirmations) and answers with a summary, a short `confirmation_id` and an
instruction to read the summary to the caller. `confirm_action(confirmation_id)` performs
it only when

1. the id names an unexpired pending action of this call, and
2. the caller answered yes *after* hearing it: a final utterance that began after the
   proposal (its start is seen by kaiwa's own speech gate, so the late tail of the sentence
   that asked for the action does not count) and that reads as affirmative in Japanese or
   English; or typed text that does; or a press on the page's confirm button (RPC).

A negative answer drops the pending action, and confirm_action then says so. Gemini's input
transcription can arrive after the model's tool call: when the caller has spoken since the
proposal but no transcript has come yet, confirm_action waits briefly for it.

The page learns which action waits for an answer from the agent attribute
`kaiwa.confirmation` (CONFIRMATION_ATTRIBUTE): compact JSON `{"id", "kind", "summary",
"expires_in_s"}` of the newest pending action not yet answered, or "" when none. Every
change (proposed, answered, performed, expired, replaced, call end) calls
`Confirmations.on_change` with the new value; the worker publishes it with
`AttributePublisher` (in order, never blocking a tool). A timer clears it at expiry.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import secrets
import time
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from livekit.agents import ToolError

logger = logging.getLogger("kaiwa.tools")

CONFIRMATION_ATTRIBUTE = "kaiwa.confirmation"
MAX_SUMMARY_CHARS = 500  # in the attribute; the model gets the whole summary
PENDING_TTL_S = 120.0
TRANSCRIPT_WAIT_S = 2.5
SAY = (
    "Read the summary to the caller and ask them to confirm. Call confirm_action with "
    "this confirmation_id only after they clearly say yes."
)

Answer = Literal["yes", "no"]

_FILLERS = ("uh ", "um ", "well ", "oh ", "えー", "えっと", "あの", "あ、", "うーん")
_NO = (
    r"^(no|nope|nah|not|don'?t|do not|stop|wait|hold on|never ?mind|cancel that)\b",
    r"^(いいえ|いや|いえ|やめ|やっぱり|だめ|ダメ|結構です|けっこうです|待って|まって|ちょっと待|違|ちが|しないで|取り消さないで)",
)
_YES = (
    r"^(yes|yeah|yep|yup|sure|ok|okay|correct|right|confirm(ed)?|go ahead|please do|do it|"
    r"that'?s (right|correct|fine)|sounds good|absolutely|affirmative)\b",
    r"^(はい|ええ|うん|お願い|おねがい|それで|大丈夫|だいじょうぶ|了解|承知|オッケー|おっけー|"
    r"かしこまり|よろしく|進めて|すすめて|どうぞ|確定|そうです|その通り)",
)
_NEGATION_ANYWHERE = re.compile(r"\b(not|don'?t|no)\b|ない|ません|やめ")


def classify(text: str) -> Answer | None:
    """ "yes", "no" or None (unclear: the model must ask again). Conservative on purpose."""
    t = unicodedata.normalize("NFKC", text).strip().lower()
    t = re.sub(r"^[\s、。,.!?！？「」]+", "", t)
    for filler in _FILLERS:
        if t.startswith(filler):
            t = t[len(filler) :].lstrip(" 、,")
    if any(re.match(p, t) for p in _NO):
        return "no"
    if any(re.match(p, t) for p in _YES):
        # "yes, but don't ..." / "はい、でもやめて" is not a yes
        rest = re.split(r"[,、.。!！]", t, maxsplit=1)
        tail = rest[1] if len(rest) > 1 else ""
        if _NEGATION_ANYWHERE.search(tail) or re.search(r"\b(but|however)\b|でも|けど", tail):
            return None
        return "yes"
    return None


@dataclass
class PendingAction:
    id: str
    kind: str
    key: str  # e.g. the case id: a newer proposal for the same kind+key replaces this one
    summary: str
    perform: Callable[[], Awaitable[dict[str, Any]]]
    created_at: float
    expires_at: float
    answer: Answer | None = None


@dataclass
class Confirmations:
    """Pending actions and the caller's answers, for one call."""

    ttl_s: float = PENDING_TTL_S
    clock: Callable[[], float] = time.monotonic
    pending: dict[str, PendingAction] = field(default_factory=dict)
    declined: dict[str, str] = field(default_factory=dict)  # id -> summary
    speech_started_at: float | None = None  # the caller's latest utterance began (gate)
    # called with the new `kaiwa.confirmation` value whenever the action shown changes
    on_change: Callable[[str], None] | None = None
    _changed: asyncio.Event | None = None
    _shown: str = ""  # the id of the action last published ("" none)
    _timer: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ the caller

    def caller_started_speaking(self, at: float | None = None) -> None:
        self.speech_started_at = self.clock() if at is None else at

    def caller_said(self, text: str, *, started_at: float | None) -> Answer | None:
        """A final utterance (spoken: started_at from the gate; typed: its arrival time)."""
        answer = classify(text)
        if answer is not None and started_at is not None:
            action = self._latest_before(started_at)
            if action is not None:
                self._answer(action, answer)
        self._notify()
        self._sync()
        return answer

    def caller_spoke_final(self, text: str) -> Answer | None:
        return self.caller_said(text, started_at=self.speech_started_at)

    def caller_typed(self, text: str) -> Answer | None:
        return self.caller_said(text, started_at=self.clock())

    def button(self, confirmation_id: str, answer: Answer) -> PendingAction | None:
        """The page's confirm / decline button: explicit, no transcript needed. The action
        answered, or None when no such action is pending (unknown, expired or done)."""
        self._expire(self.clock())
        action = self.pending.get(confirmation_id.strip())
        if action is not None:
            self._answer(action, answer)
            self._notify()
        self._sync()
        return action

    def _latest_before(self, started_at: float) -> PendingAction | None:
        self._expire(self.clock())
        candidates = [p for p in self.pending.values() if p.created_at < started_at]
        return max(candidates, key=lambda p: p.created_at, default=None)

    def _answer(self, action: PendingAction, answer: Answer) -> None:
        if answer == "no":
            del self.pending[action.id]
            self.declined[action.id] = action.summary
        else:
            action.answer = "yes"

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()

    # ------------------------------------------------------------------ the tools

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
        self._sync()
        return {
            "needs_confirmation": True,
            "confirmation_id": pid,
            "summary": summary,
            "say": SAY,
        }

    async def take(
        self, confirmation_id: str, *, wait_s: float = TRANSCRIPT_WAIT_S
    ) -> PendingAction:
        """The confirmed action to perform now (removed), or a ToolError saying why not."""
        try:
            return await self._take(confirmation_id.strip(), wait_s)
        finally:
            self._sync()

    async def _take(self, pid: str, wait_s: float) -> PendingAction:
        action = self._lookup(pid)
        if action.answer != "yes" and self._spoke_since(action):
            # the caller spoke after the proposal; their transcript may still be on its way
            deadline = self.clock() + wait_s
            while action.answer != "yes" and pid in self.pending and self.clock() < deadline:
                self._changed = asyncio.Event()
                try:
                    async with asyncio.timeout(max(0.0, deadline - self.clock())):
                        await self._changed.wait()
                except TimeoutError:
                    break
            action = self._lookup(pid)
        if action.answer != "yes":
            raise ToolError(
                "Not confirmed: the caller has not said yes to this yet, so nothing was "
                f"changed. Read this to the caller and wait for a clear yes: {action.summary}"
            )
        del self.pending[pid]
        return action

    def _lookup(self, pid: str) -> PendingAction:
        self._expire(self.clock())
        if pid in self.declined:
            raise ToolError(
                "The caller said no to this, so nothing was changed and the request was "
                "dropped. Tell them it was not done."
            )
        action = self.pending.get(pid)
        if action is None:
            raise ToolError(
                f"There is no pending action with confirmation id '{pid}' (it may have "
                "expired or been done already). Nothing was changed. Ask for the action "
                "again to get a new summary to confirm."
            )
        return action

    def _spoke_since(self, action: PendingAction) -> bool:
        return self.speech_started_at is not None and self.speech_started_at > action.created_at

    def _expire(self, now: float) -> None:
        for pid, p in list(self.pending.items()):
            if p.expires_at <= now:
                del self.pending[pid]

    # ------------------------------------------------------------------ the page

    def awaiting(self) -> PendingAction | None:
        """The newest unexpired pending action still waiting for the caller's answer."""
        now = self.clock()
        waiting = [p for p in self.pending.values() if p.answer is None and p.expires_at > now]
        return max(waiting, key=lambda p: p.created_at, default=None)

    def attribute(self) -> str:
        """The `kaiwa.confirmation` value now: compact JSON, or "" when nothing waits."""
        action = self.awaiting()
        if action is None:
            return ""
        summary = action.summary
        if len(summary) > MAX_SUMMARY_CHARS:
            summary = summary[: MAX_SUMMARY_CHARS - 1] + "…"
        body = {
            "id": action.id,
            "kind": action.kind,
            "summary": summary,
            "expires_in_s": max(1, math.ceil(action.expires_at - self.clock())),
        }
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"))

    def close(self) -> None:
        """The call ended: nothing may be performed any more, and the page shows nothing."""
        self.pending.clear()
        self._sync()

    def _sync(self) -> None:
        """After any change: publish the action shown if it changed; re-arm the expiry timer."""
        self._expire(self.clock())
        action = self.awaiting()
        shown = action.id if action is not None else ""
        self._arm_timer()
        if shown != self._shown:
            self._shown = shown
            if self.on_change is not None:
                self.on_change(self.attribute())

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # used outside a loop (tests): expiry is seen on the next change
            return
        due = min(p.expires_at for p in self.pending.values()) - self.clock()
        self._timer = loop.call_later(max(0.0, due) + 0.01, self._sync)


def button_instructions(action: PendingAction, answer: Answer) -> str:
    """What the model is told when the caller answers with the page's button.

    The press itself only records the answer: nothing is performed until the model calls
    confirm_action, and the model has heard nothing (no speech, no typed text). So it is told
    in the conversation, as reply instructions, and proceeds (or says it was not done).
    """
    if answer == "yes":
        return (
            f"The caller pressed Confirm on the screen for confirmation_id {action.id}: "
            f"{action.summary} Call confirm_action with confirmation_id {action.id} now, then "
            "tell them briefly that it is done."
        )
    return (
        f"The caller pressed Decline on the screen for confirmation_id {action.id}: "
        f"{action.summary} Nothing was changed and the request was dropped; do not call "
        "confirm_action. Tell them briefly that it was not done."
    )


class AttributePublisher:
    """Publishes the latest value of one attribute without blocking whoever changed it.

    `publish` is the async setter (the worker: local_participant.set_attributes). Values
    are sent in order by one task; a value overtaken while another is being sent is
    skipped (only the newest matters); a failure is logged, never raised.
    """

    def __init__(self, publish: Callable[[str], Awaitable[None]], *, initial: str = "") -> None:
        self._publish = publish
        self._latest = initial
        self._sent = initial
        self._task: asyncio.Task[None] | None = None

    def __call__(self, value: str) -> None:
        self._latest = value
        if self._task is not None and not self._task.done():
            return  # the running task sends it next
        try:
            self._task = asyncio.get_running_loop().create_task(self._drain())
        except RuntimeError:
            logger.debug("no event loop; attribute not published")

    async def _drain(self) -> None:
        while self._latest != self._sent:
            value = self._sent = self._latest
            try:
                await self._publish(value)
            except Exception as e:  # the page signal must never break a tool
                logger.warning("could not publish %s: %s", CONFIRMATION_ATTRIBUTE, e)

    async def wait(self) -> None:
        """Until everything set so far was sent (tests)."""
        if self._task is not None:
            await self._task


def listen(session: Any, confirmations: Confirmations) -> None:
    """Feed the caller's final utterances from AgentSession events into `confirmations`.

    Spoken: `user_input_transcribed` with is_final (Gemini's input transcription, which can
    come late; its start is the gate's latest speech start). Typed: a user message added
    to the conversation that is not the final transcript just seen (lk.chat text).
    """
    last_final: list[str] = [""]

    def on_transcribed(ev: Any) -> None:
        text = str(getattr(ev, "transcript", "")).strip()
        if text and getattr(ev, "is_final", False):
            last_final[0] = text
            confirmations.caller_spoke_final(text)

    def on_item(ev: Any) -> None:
        item = getattr(ev, "item", None)
        if getattr(item, "role", None) != "user":
            return
        text = (getattr(item, "text_content", None) or "").strip()
        if text and text != last_final[0]:
            confirmations.caller_typed(text)

    session.on("user_input_transcribed", on_transcribed)
    session.on("conversation_item_added", on_item)

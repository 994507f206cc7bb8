"""The default "auto" behaviour: answer like a very polite, very boring model.

Kept deliberately small. Every trigger goes through FakeConversation.spawn_auto(), which does
nothing when `conv.auto` is False or anything (a test's speak() or another auto reply) is
being spoken, so a test that drives a conversation by hand is never talked over.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from .audio import UserTurn

if TYPE_CHECKING:
    from .conversation import FakeConversation


@dataclass
class AutoScript:
    greeting_text: str = "Hello, this is kaiwa's test voice."
    greeting_seconds: float = 2.0
    reply_text: str = "Sure. This is the fake model answering you."
    reply_seconds: float = 2.0
    # what the fake "heard" after a voice turn (inputTranscription). Per turn, the first of:
    # conv.next_user_transcript (used once), the next item of user_transcripts, this default
    user_transcript: str = "(user speech)"
    user_transcripts: deque[str] = field(default_factory=deque)
    # "late" (like the real service): pieces during the reply, the last after turnComplete;
    # "before": the whole transcript before the reply audio (the old, lenient behaviour)
    transcript_timing: Literal["before", "late"] = "late"
    transcript_pieces: int = 3
    typed_reply_format: str = "You said: {text}"

    def transcript_for(self, conv: FakeConversation) -> str:
        """The words the caller "said" in the turn that just ended (consumes the queue)."""
        if conv.next_user_transcript is not None:
            text, conv.next_user_transcript = conv.next_user_transcript, None
            return text
        if self.user_transcripts:
            return self.user_transcripts.popleft()
        return self.user_transcript

    def on_instructions(self, conv: FakeConversation, instructions: str) -> None:
        """generate_reply(instructions=...): the agent's greeting, typically."""
        conv.spawn_auto(lambda: conv.auto_speak(self.greeting_text, self.greeting_seconds))

    def on_reply_request(self, conv: FakeConversation, user_text: str | None) -> None:
        """turnComplete without instructions: answer typed text, or just reply."""
        if user_text:
            self._typed(conv, user_text)
        else:
            conv.spawn_auto(lambda: conv.auto_speak(self.reply_text, self.reply_seconds))

    def on_realtime_text(self, conv: FakeConversation, text: str) -> None:
        self._typed(conv, text)

    def on_user_turn(self, conv: FakeConversation, turn: UserTurn | None) -> None:
        """End of a spoken user turn (energy VAD, or activityEnd with manual activity).

        The reply is skipped if a resume loses the turn before the reply starts."""
        if not conv.auto:
            return
        transcript = self.transcript_for(conv)
        if turn is not None:
            turn.transcript = transcript
        conv.spawn_auto(
            lambda: conv.auto_speak(
                self.reply_text,
                self.reply_seconds,
                input_transcript=transcript,
                turn=turn,
                transcript_timing=self.transcript_timing,
                transcript_pieces=self.transcript_pieces,
            )
        )

    def _typed(self, conv: FakeConversation, text: str) -> None:
        reply = self.typed_reply_format.format(text=text)
        conv.spawn_auto(lambda: conv.auto_speak(reply, max(1.0, 0.07 * len(reply))))

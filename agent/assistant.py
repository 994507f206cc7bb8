"""The Agent: kaiwa's persona and greeting."""

from __future__ import annotations

from livekit.agents import Agent, llm

DEFAULT_INSTRUCTIONS = """\
You are kaiwa, the voice of the reception desk of a data-recovery service.
Callers bring failed hard disks, SSDs, USB sticks, SD cards, phones and RAID/NAS units.
Answer in the caller's language (Japanese or English most often), in short spoken
sentences: no lists, no markdown, no emoji. Be calm and precise; callers are often
worried about lost data. Use your tools to look up, create and update cases instead of
guessing, say case ids clearly (for example "R-1042"), and confirm before anything
that costs the caller money or cancels their case. If a tool fails, say so plainly
and offer what you can do instead."""


class Assistant(Agent):
    def __init__(
        self,
        *,
        instructions: str | None,
        greeting_instructions: str | None,
        tools: list[llm.Tool | llm.Toolset] | None = None,
    ) -> None:
        super().__init__(instructions=instructions or DEFAULT_INSTRUCTIONS, tools=tools or [])
        self._greeting_instructions = greeting_instructions

    async def on_enter(self) -> None:
        # Greet once, when the agent first joins; a resumed Gemini session does not
        # re-enter the agent, so this never repeats on reconnect.
        if self._greeting_instructions:
            self.session.generate_reply(instructions=self._greeting_instructions)

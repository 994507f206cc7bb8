"""kaiwa's function tools, one module per tool source.

`build_tools(settings)` returns everything the agent offers Gemini.
"""

from __future__ import annotations

from livekit.agents import llm

from ..settings import Settings
from . import runtime


def build_tools(settings: Settings) -> list[llm.Tool | llm.Toolset]:
    runtime.set_default_timeout(settings.tool_timeout_s)
    tools: list[llm.Tool | llm.Toolset] = []
    return tools

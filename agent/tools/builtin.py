"""Gemini's built-in tools, run by Google inside the Live session (no code here).

They go into the same tools list as function tools; the plugin turns them into
`types.Tool(google_search=...)` / `code_execution` entries of the setup message.
"""

from __future__ import annotations

from livekit.agents import llm
from livekit.plugins.google.tools import GoogleSearch, ToolCodeExecution

from ..settings import Settings


def build_builtin_tools(settings: Settings) -> list[llm.Tool]:
    tools: list[llm.Tool] = []
    if settings.google_search:
        tools.append(GoogleSearch())
    if settings.code_execution:
        tools.append(ToolCodeExecution())
    return tools

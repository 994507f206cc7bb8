"""kaiwa's function tools, one module per tool source.

`build_tools(settings)` returns everything the agent offers Gemini:
- desk.py    the service desk (cases, confirmations, the slow lab example)
- camera.py  a photo from the caller's camera, attached to a case
- clock.py   the current date/time in KAIWA_TIMEZONE
- screen.py  the caller's screen over LiveKit RPC (ui.py is the RPC contract)
- page_actions.py / screen_context.py  actions a page declares (ui_* tools, per session)
  and its screen context (get_screen); wired per call in worker.py, not listed here
- mcp.py     tools of MCP servers (KAIWA_MCP_SERVERS)
- openapi.py operations of an OpenAPI 3 backend (KAIWA_OPENAPI_*)
- jobs.py    allow-listed background jobs (start_job, job_status, cancel_job; staff)
- builtin.py Gemini's own Google Search / code execution

Adding a Python tool: write an `async def` taking `ctx: RunContext` in one of these
modules (or a new one), decorate it with `@kaiwa_tool()`, and list it in that module's
`TOOLS` (add the module to `_PYTHON_TOOL_MODULES` if new). See README "Adding a tool".
"""

from __future__ import annotations

from livekit.agents import llm

from ..settings import Settings
from . import camera, clock, desk, runtime, screen
from .builtin import build_builtin_tools
from .jobs import build_job_tools
from .mcp import build_mcp_toolsets
from .openapi import build_openapi_toolsets

_PYTHON_TOOL_MODULES = (desk, camera, clock, screen)


def python_tools() -> list[llm.Tool]:
    return [t for m in _PYTHON_TOOL_MODULES for t in m.TOOLS]


def build_tools(settings: Settings, role: str = "staff") -> list[llm.Tool | llm.Toolset]:
    """The tools offered to one call: only those its role may use (the runtime refuses the
    others too). They hold no state; that is the call's CallState.

    Callers get the customer's tools; MCP and OpenAPI backends are staff tools.
    """
    tools: list[llm.Tool | llm.Toolset] = [
        t for t in python_tools() if role in runtime.policy_of(t).roles
    ]
    if role == "staff":
        tools += build_mcp_toolsets(settings)
        tools += build_openapi_toolsets(settings)
        tools += build_job_tools(settings.allowed_jobs())
    tools += build_builtin_tools(settings)
    return tools

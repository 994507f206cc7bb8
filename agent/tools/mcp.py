"""Tools from MCP servers (KAIWA_MCP_SERVERS), offered to Gemini next to ours.

Built on livekit-agents' `MCPToolset` (the 1.8.9 API; `mcp_servers=` is deprecated).
kaiwa adds what the toolset leaves out:
- an allow-list for stdio servers too (the framework filters only HTTP servers);
- the same guard as our own tools (`kaiwa_tool`): per-tool timeout → spoken ToolError,
  Gemini's toolCallCancellation, logging with arguments, the `kaiwa.tools` attribute;
- a bounded connect: a dead server costs at most `connect_timeout_s` at session start and
  its tools are simply missing (logged), instead of holding up the call.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from livekit.agents import RunContext, llm
from livekit.agents.llm.mcp import MCPServer, MCPServerHTTP, MCPServerStdio, MCPToolset

from ..settings import MCPServerConfig, Settings
from .runtime import kaiwa_tool

logger = logging.getLogger("kaiwa.tools.mcp")

CONNECT_TIMEOUT_S = 10.0


def make_server(cfg: MCPServerConfig, *, call_timeout_s: float) -> MCPServer:
    timeout = cfg.timeout_s or call_timeout_s
    if cfg.url is not None:
        return MCPServerHTTP(
            cfg.url,
            transport_type=cfg.transport,
            allowed_tools=cfg.allowed_tools,
            headers={k: v.get_secret_value() for k, v in cfg.headers.items()},
            client_session_timeout_seconds=timeout,
        )
    assert cfg.command is not None
    return MCPServerStdio(
        cfg.command, cfg.args, env=cfg.env, cwd=cfg.cwd, client_session_timeout_seconds=timeout
    )


class GuardedMCPToolset(MCPToolset):
    """An MCPToolset whose tools are allow-listed and wrapped by `kaiwa_tool`."""

    def __init__(self, cfg: MCPServerConfig, *, call_timeout_s: float) -> None:
        super().__init__(
            id=f"mcp_{cfg.name}", mcp_server=make_server(cfg, call_timeout_s=call_timeout_s)
        )
        self.config = cfg
        self.timeout_s = cfg.timeout_s or call_timeout_s

    async def setup(self, *, reload: bool = False) -> GuardedMCPToolset:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                await super().setup(reload=reload)
        except Exception as e:
            # Toolset.setup errors are only logged by the framework; say which server.
            logger.error(
                "MCP server %s unavailable; its tools are not offered: %r", self.config.name, e
            )
            self._tools = []
            return self
        allowed = self.config.allowed_tools
        raw = [t for t in self._tools if isinstance(t, llm.RawFunctionTool)]
        self._tools = [
            _guard(t, timeout_s=self.timeout_s)
            for t in raw
            if allowed is None or t.info.name in allowed
        ]
        logger.info("MCP server %s offers %s", self.config.name, [t.id for t in self._tools])
        return self


def _guard(tool: llm.RawFunctionTool, *, timeout_s: float) -> llm.Tool:
    schema = dict(tool.info.raw_schema)
    # The MCP call has its own client timeout (the same value); ours adds a margin so
    # the server's own error wins when it answers in time.
    timeout = timeout_s + 1.0

    async def call(raw_arguments: dict[str, Any], ctx: RunContext) -> Any:
        return await tool(raw_arguments=raw_arguments)

    return kaiwa_tool(raw_schema=schema, timeout_s=timeout)(call)


def build_mcp_toolsets(settings: Settings) -> list[llm.Toolset]:
    return [
        GuardedMCPToolset(cfg, call_timeout_s=settings.tool_timeout_s)
        for cfg in settings.mcp_servers
    ]

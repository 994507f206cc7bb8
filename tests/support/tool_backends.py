"""Small local tool backends for tests: an MCP server and an HTTP API with its own OpenAPI
spec. Both are real servers (uvicorn on a free loopback port, or MCP over stdio when this
file is run as a script: `python tests/support/tool_backends.py mcp-stdio`).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from fastapi import FastAPI, Header, HTTPException
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError as MCPToolError
from pydantic import BaseModel

API_KEY = "backend-test-key"
PARTS = {"PCB-7200": 18_000, "HEAD-3.5": 42_000}


def build_mcp_server() -> MCPServer:
    server = MCPServer("kaiwa-test-parts")

    @server.tool()
    def part_stock(part_no: str) -> str:
        """How many donor parts of this kind the lab has in stock."""
        stock = {"PCB-7200": 3, "HEAD-3.5": 0}
        if part_no not in stock:
            raise MCPToolError(f"There is no part {part_no} in the catalogue.")
        return f"{stock[part_no]} units of {part_no} in stock"

    @server.tool()
    def secret_admin_tool() -> str:
        """Not on the allow-list: must never be offered to the model."""
        return "should not be reachable"

    return server


class Courier(BaseModel):
    case_id: str
    date: str
    address: str


def build_openapi_app() -> FastAPI:
    app = FastAPI(title="Parts and courier API", version="1.0")

    def check(key: str | None) -> None:
        if key != API_KEY:
            raise HTTPException(401, "missing or wrong API key")

    @app.get("/parts/{part_no}", operation_id="get_part_price", summary="Price of a donor part")
    def get_part_price(
        part_no: str, currency: str = "JPY", x_api_key: str | None = Header(None)
    ) -> dict[str, Any]:
        check(x_api_key)
        if part_no not in PARTS:
            raise HTTPException(404, f"no part {part_no}")
        return {"part_no": part_no, "price": PARTS[part_no], "currency": currency}

    @app.post("/couriers", operation_id="book_courier", summary="Book a courier pickup")
    def book_courier(body: Courier, x_api_key: str | None = Header(None)) -> dict[str, Any]:
        check(x_api_key)
        return {"booking": f"CR-{body.case_id}", "date": body.date}

    @app.get("/admin/wipe", operation_id="wipe_everything", summary="Not allow-listed")
    def wipe() -> dict[str, Any]:
        return {"wiped": True}

    return app


class Served:
    """An ASGI app on a free loopback port, run by uvicorn inside the current loop."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.server: uvicorn.Server | None = None
        self.task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        sock = self.server.servers[0].sockets[0]
        host, port = sock.getsockname()[:2]
        return f"http://{host}:{port}"

    async def start(self, timeout: float = 15.0) -> None:
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.task = asyncio.create_task(self.server.serve())
        async with asyncio.timeout(timeout):
            while not self.server.started:
                if self.task.done():
                    self.task.result()
                await asyncio.sleep(0.02)  # uvicorn exposes no started event

    async def stop(self) -> None:
        if self.server is not None and self.task is not None:
            self.server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.task, 10)


@contextlib.asynccontextmanager
async def served(app: Any) -> AsyncIterator[Served]:
    s = Served(app)
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


def mcp_http_app() -> Any:
    return build_mcp_server().streamable_http_app(streamable_http_path="/mcp")


if __name__ == "__main__":
    if sys.argv[1:] == ["mcp-stdio"]:
        asyncio.run(build_mcp_server().run_stdio_async())
    else:
        sys.exit("usage: tool_backends.py mcp-stdio")

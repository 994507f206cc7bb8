"""MCP, OpenAPI and Gemini built-in tools: from settings to callable tools, against real
local servers (an MCP server over streamable HTTP and stdio, a FastAPI app with its spec)."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from livekit.agents import ToolError, llm
from livekit.plugins.google.utils import create_tools_config

from agent.settings import SettingsError, load_settings
from agent.tools import build_tools
from agent.tools.mcp import GuardedMCPToolset
from agent.tools.openapi import OpenAPIToolset, operations
from tests.support.tool_backends import (
    API_KEY,
    Served,
    build_openapi_app,
    mcp_http_app,
    served,
)
from tests.support.tools_harness import call, settings_for

BACKENDS = Path(__file__).resolve().parents[1] / "support" / "tool_backends.py"


@pytest.fixture(scope="module")
async def api() -> AsyncIterator[Served]:
    async with served(build_openapi_app()) as s:
        yield s


@pytest.fixture(scope="module")
async def mcp_http() -> AsyncIterator[Served]:
    async with served(mcp_http_app()) as s:
        yield s


def by_name(ts: llm.Toolset) -> dict[str, Any]:
    return {t.id: t for t in ts.tools}


async def toolsets(tmp_path: Path, **env: str) -> list[llm.Toolset]:
    tools = build_tools(settings_for(tmp_path / "d.sqlite3", **env))
    sets = [t for t in tools if isinstance(t, llm.Toolset)]
    for ts in sets:
        await ts.setup()
    return sets


async def test_mcp_http_tools_are_allow_listed_and_callable(
    mcp_http: Served, tmp_path: Path
) -> None:
    cfg = [{"name": "parts", "url": f"{mcp_http.url}/mcp", "allowed_tools": ["part_stock"]}]
    (ts,) = await toolsets(tmp_path, KAIWA_MCP_SERVERS=json.dumps(cfg))
    try:
        assert isinstance(ts, GuardedMCPToolset)
        tools = by_name(ts)
        assert list(tools) == ["part_stock"]  # secret_admin_tool is filtered out
        out = await call(tools["part_stock"], part_no="PCB-7200")
        assert "3 units of PCB-7200" in out
        with pytest.raises(ToolError, match="no part NOPE"):
            await call(tools["part_stock"], part_no="NOPE")
    finally:
        await ts.aclose()


async def test_mcp_stdio_server_with_allow_list(tmp_path: Path) -> None:
    cfg = [
        {
            "name": "parts-stdio",
            "command": sys.executable,
            "args": [str(BACKENDS), "mcp-stdio"],
            "allowed_tools": ["part_stock"],
        }
    ]
    (ts,) = await toolsets(tmp_path, KAIWA_MCP_SERVERS=json.dumps(cfg))
    try:
        tools = by_name(ts)
        assert list(tools) == ["part_stock"]  # the framework filters only HTTP servers
        assert "0 units of HEAD-3.5" in await call(tools["part_stock"], part_no="HEAD-3.5")
    finally:
        await ts.aclose()


async def test_unreachable_mcp_server_offers_nothing(tmp_path: Path) -> None:
    cfg = [{"name": "gone", "url": "http://127.0.0.1:9/mcp"}]
    (ts,) = await toolsets(tmp_path, KAIWA_MCP_SERVERS=json.dumps(cfg))
    assert list(ts.tools) == []
    await ts.aclose()


async def test_openapi_operations_become_tools(api: Served, tmp_path: Path) -> None:
    (ts,) = await toolsets(
        tmp_path,
        KAIWA_OPENAPI_SPEC=f"{api.url}/openapi.json",
        KAIWA_OPENAPI_BASE_URL=api.url,
        KAIWA_OPENAPI_AUTH_HEADER=f"X-Api-Key: {API_KEY}",
        KAIWA_OPENAPI_OPERATIONS="get_part_price, book_courier",
    )
    try:
        tools = by_name(ts)
        assert list(tools) == ["get_part_price", "book_courier"]  # not wipe_everything
        params = tools["get_part_price"].info.raw_schema["parameters"]
        assert params["required"] == ["part_no"]
        assert set(params["properties"]) >= {"part_no", "currency"}
        body = tools["book_courier"].info.raw_schema["parameters"]["properties"]["body"]
        assert set(body["properties"]) == {"case_id", "date", "address"}  # $ref inlined

        out = await call(tools["get_part_price"], part_no="PCB-7200", currency="USD")
        assert out == {"part_no": "PCB-7200", "price": 18000, "currency": "USD"}
        booked = await call(
            tools["book_courier"],
            body={"case_id": "R-1001", "date": "2030-01-02", "address": "Tokyo"},
        )
        assert booked == {"booking": "CR-R-1001", "date": "2030-01-02"}
        with pytest.raises(ToolError, match=r"found nothing.*no part X"):
            await call(tools["get_part_price"], part_no="X")
        with pytest.raises(ToolError, match="refused the request as invalid"):
            await call(tools["book_courier"], body={"case_id": "R-1"})
    finally:
        await ts.aclose()


async def test_openapi_auth_failure_and_dead_backend(api: Served) -> None:
    spec = await _get_json(f"{api.url}/openapi.json")
    ts = OpenAPIToolset(spec="unused", base_url=api.url, operation_ids=["get_part_price"])
    (op,) = operations(spec, ["get_part_price"])
    with pytest.raises(ToolError, match="refused access"):
        await ts.call(op, {"part_no": "PCB-7200"})
    await ts.aclose()
    dead = OpenAPIToolset(spec="unused", base_url="http://127.0.0.1:9", operation_ids=[])
    with pytest.raises(ToolError, match="can't be reached"):
        await dead.call(op, {"part_no": "PCB-7200"})
    await dead.aclose()


def test_unknown_operation_ids_are_reported() -> None:
    spec = {"openapi": "3.1.0", "paths": {}}
    with pytest.raises(ValueError, match="not in the spec: nope"):
        operations(spec, ["nope"])


def test_builtin_gemini_tools_join_the_tools_config(tmp_path: Path) -> None:
    tools = build_tools(
        settings_for(tmp_path / "d.sqlite3", KAIWA_GOOGLE_SEARCH="true", KAIWA_CODE_EXECUTION="1")
    )
    configs, mixed = create_tools_config(llm.ToolContext(tools))  # as the plugin does
    kinds = [next(iter(c.model_dump(exclude_none=True))) for c in configs]
    assert mixed
    assert "google_search" in kinds and "code_execution" in kinds
    assert "function_declarations" in kinds


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"KAIWA_MCP_SERVERS": "[{"}, "not valid JSON"),
        ({"KAIWA_MCP_SERVERS": '[{"name": "x"}]'}, "either 'url' or 'command'"),
        ({"KAIWA_OPENAPI_SPEC": "/no/such/spec.json", "KAIWA_OPENAPI_BASE_URL": "http://x",
          "KAIWA_OPENAPI_OPERATIONS": "a"}, "does not exist"),
        ({"KAIWA_OPENAPI_SPEC": "http://x/spec", "KAIWA_OPENAPI_BASE_URL": "http://x"},
         "KAIWA_OPENAPI_OPERATIONS"),
        ({"KAIWA_OPENAPI_AUTH_HEADER": "just-a-token"}, "Name: value"),
    ],
)  # fmt: skip
def test_bad_tool_source_settings_fail_at_start(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], words: str
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(SettingsError, match=words):
        load_settings()


def test_mcp_header_secrets_stay_out_of_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = [{"name": "crm", "url": "http://x/mcp", "headers": {"Authorization": "Bearer s3cr3t"}}]
    monkeypatch.setenv("KAIWA_MCP_SERVERS", json.dumps(cfg))
    monkeypatch.setenv("KAIWA_OPENAPI_AUTH_HEADER", "X-Key: t0ps3cr3t")
    s = load_settings()
    assert "s3cr3t" not in repr(s) and "t0ps3cr3t" not in repr(s)


async def _get_json(url: str) -> Any:
    import httpx

    async with httpx.AsyncClient() as c:
        return (await c.get(url)).json()

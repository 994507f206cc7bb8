"""The tool guard: timeout → spoken ToolError, crashes → a generic sentence (and a log
with context), Gemini's cancellation → the running tool really stops, policies recorded."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from livekit.agents import RunContext, StopResponse, ToolError

from agent.tools import desk, runtime, screen
from tests.support.tools_harness import call


@runtime.kaiwa_tool(timeout_s=0.3)
async def sleepy(ctx: RunContext, seconds: float) -> str:
    """Sleeps."""
    await asyncio.sleep(seconds)
    return "done"


@runtime.kaiwa_tool()
async def broken(ctx: RunContext, secret_arg: str) -> str:
    """Fails."""
    raise KeyError("boom")


async def test_timeout_becomes_a_spoken_error_in_time() -> None:
    started = time.monotonic()
    with pytest.raises(ToolError) as err:
        await call(sleepy, seconds=30)
    assert time.monotonic() - started < 1.3
    assert "took longer than 0.3 seconds" in err.value.message
    assert await call(sleepy, seconds=0) == "done"


async def test_unexpected_exception_is_logged_and_generic(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="kaiwa.tools"), pytest.raises(ToolError) as err:
        await call(broken, secret_arg="R-1001")
    assert "internal problem" in err.value.message and "boom" not in err.value.message
    rec = next(r for r in caplog.records if r.getMessage() == "tool failed unexpectedly")
    assert rec.tool == "broken" and "R-1001" in rec.arguments  # type: ignore[attr-defined]
    assert rec.exc_info is not None


async def test_model_cancellation_stops_the_tool() -> None:
    task = asyncio.create_task(call(sleepy, seconds=0.25))
    await asyncio.sleep(0.05)
    (call_id,) = list(runtime._running)
    assert runtime.cancel_calls([call_id]) == 1
    with pytest.raises(StopResponse):
        await task
    assert runtime.cancel_calls([call_id]) == 0  # not running any more


def test_policies_declare_the_slow_tool_non_blocking() -> None:
    assert runtime.POLICIES["check_lab_progress"] == runtime.ToolPolicy(
        behavior="non_blocking", scheduling="when_idle"
    )
    assert runtime.POLICIES["show_case"].timeout_s is not None
    assert desk.check_lab_progress.info.name == "check_lab_progress"
    assert screen.show_case.info.name == "show_case"

"""The tool guard: timeout → spoken ToolError, crashes → a sentence (and a log with the
tool and call id, never the arguments), Gemini's cancellation → the running tool really
stops, and its database write with it; policies travel with the tool; per-call state."""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from livekit.agents import RunContext, StopResponse, ToolError

from agent.tools import desk, runtime, screen
from agent.tools.context import desk_call, services
from tests.support.tools_harness import FakeSession, call, settings_for, use_services


@pytest.fixture(autouse=True)
def db(tmp_path: Path) -> Path:
    path = tmp_path / "desk.sqlite3"
    use_services(settings_for(path, KAIWA_LAB_DELAY_S="0"))
    return path


def tool_started(state: object) -> asyncio.Event:
    """Set when the call's tool activity (the kaiwa.tools attribute) shows a running tool."""
    started = asyncio.Event()

    async def publish(value: str) -> None:
        if value != "[]":
            started.set()

    state.activity.attach(publish)  # type: ignore[attr-defined]
    return started


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


async def test_unexpected_exception_is_logged_without_arguments(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="kaiwa.tools"), pytest.raises(ToolError) as err:
        await call(broken, secret_arg="090-1234-5678")
    assert "internal problem" in err.value.message and "boom" not in err.value.message
    rec = next(r for r in caplog.records if r.getMessage().startswith("tool failed"))
    assert rec.tool == "broken" and rec.exc_info is not None  # type: ignore[attr-defined]
    assert "090-1234-5678" not in caplog.text


async def test_model_cancellation_stops_the_tool() -> None:
    session = FakeSession()
    state = session.userdata
    started = tool_started(state)
    task = asyncio.create_task(call(sleepy, session, seconds=0.25))
    await asyncio.wait_for(started.wait(), 2)
    (call_id,) = list(state.running)
    assert state.cancel_calls([call_id]) == 1
    with pytest.raises(StopResponse):
        await task
    assert state.cancel_calls([call_id]) == 0  # not running any more


@runtime.kaiwa_tool(timeout_s=5)
async def slow_note(ctx: RunContext, case_id: str) -> str:
    """Adds a note, with the write held just before COMMIT until the test releases it."""
    await desk_call(services(ctx).desk.add_note, case_id, "written by a cancelled call")
    return "saved"


async def test_a_cancelled_call_never_commits_its_write(db: Path) -> None:
    created = await call(desk.create_case, customer_name="Aoki", device_type="SSD", symptom="x")
    session = FakeSession()
    state = session.userdata
    at_commit, release = threading.Event(), threading.Event()

    real = state.services.desk.add_note

    @functools.wraps(real)
    def paused_add_note(*args: object, **kwargs: object) -> object:
        guard = kwargs["guard"]
        guard.before_commit = lambda: (at_commit.set(), release.wait(5))  # type: ignore[attr-defined]
        return real(*args, **kwargs)  # type: ignore[arg-type]

    state.services.desk.add_note = paused_add_note  # type: ignore[method-assign]
    task = asyncio.create_task(call(slow_note, session, case_id=created["id"]))
    assert await asyncio.to_thread(at_commit.wait, 5), "the write never reached COMMIT"
    (call_id,) = list(state.running)
    state.cancel_calls([call_id])  # Gemini's toolCallCancellation, mid-write
    release.set()
    with pytest.raises(StopResponse):
        await task
    await asyncio.sleep(0.2)  # the thread finishes its (refused) commit
    with sqlite3.connect(db) as conn:
        notes = conn.execute("SELECT count(*) FROM notes").fetchone()[0]
    assert notes == 0


async def test_two_calls_in_one_process_do_not_share_state() -> None:
    a, b = FakeSession(), FakeSession()
    started = tool_started(a.userdata)
    task = asyncio.create_task(call(sleepy, a, seconds=0.2))
    await asyncio.wait_for(started.wait(), 2)
    assert a.userdata.activity.running == ["sleepy"] and b.userdata.activity.running == []
    assert not b.userdata.running and b.userdata.cancel_calls(list(a.userdata.running)) == 0
    created = await call(desk.create_case, customer_name="Aoki", device_type="SSD", symptom="x")
    await call(desk.update_status, case_id=created["id"], status="diagnosing")
    proposal = await call(desk.set_quote, a, case_id=created["id"], amount_yen="1000")
    b.caller_says("yes")
    with pytest.raises(ToolError, match="no pending action"):
        await call(desk.confirm_action, b, confirmation_id=proposal["confirmation_id"])
    await task


def test_policies_travel_with_the_tool() -> None:
    assert runtime.policy_of(desk.check_lab_progress) == runtime.ToolPolicy(
        behavior="non_blocking", scheduling="when_idle", roles=("staff", "caller")
    )
    assert runtime.policy_of(desk.create_case).behavior is None  # declared blocking
    assert runtime.policy_of(screen.show_case).timeout_s is not None
    assert desk.check_lab_progress.info.name == "check_lab_progress"

"""Background jobs by voice against the real stack: livekit-server, a worker, a staff token
server, the desk, and the Gemini fake scripting the model's tool calls.

- a job started with start_job answers at once, streams progress to the page (text stream
  kaiwa.jobs) while the conversation goes on, and its result reaches the model exactly once
  after it ends; the job row is in the database;
- "cancel it" (cancel_job) stops the process: its pid is gone;
- a Gemini connection dropped while the job runs does not lose or double the result.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from livekit import rtc

from desk import Desk
from desk.seed import seed
from tests.fakes.gemini_live import FakeConversation, GeminiLiveFake
from tests.fakes.gemini_live.records import ClientContentRecord, SetupInfo
from tests.support.caller import Caller
from tests.support.responses import tool_output
from tests.support.stack import (
    ROOT,
    STAFF_KEY,
    LiveKitServer,
    TokenServer,
    Worker,
    staff_tokens_env,
    worker_env,
)

from .conftest import fresh_conversation

pytestmark = pytest.mark.timeout(180)

AGENT = "kaiwa-jobs"
DIAGNOSE_S = 4.0
LONG_JOB = {
    "name": "long_diagnose",
    "description": "The diagnostic script over a whole disk (a minute).",
    "argv": [
        "{python}",
        str(ROOT / "agent" / "jobs_examples" / "diagnose.py"),
        "--image",
        "{data_dir}/images/{image}",
        "--seconds",
        "60",
    ],
    "parameters": {
        "type": "object",
        "properties": {"image": {"type": "string", "pattern": "^[a-z0-9-]+\\.img$"}},
        "required": ["image"],
    },
}


@pytest.fixture(scope="module")
def jobs_db(stack_dir: Path) -> Path:
    db = stack_dir / "jobs.sqlite3"
    desk = Desk.open(db)  # demo cases, so the console screenshot shows a queue
    try:
        seed(desk, customers=16, rng_seed=7)
    finally:
        desk.close()
    return db


@pytest.fixture(scope="module")
async def jobs_worker(
    livekit: LiveKitServer, gemini: GeminiLiveFake, stack_dir: Path, jobs_db: Path
) -> AsyncIterator[Worker]:
    env = worker_env(
        livekit,
        gemini.env(),
        KAIWA_AGENT_NAME=AGENT,
        KAIWA_DESK_DB=str(jobs_db),
        KAIWA_JOBS_DIR=str(stack_dir / "jobs"),
        KAIWA_JOBS_DIAGNOSE_S=str(DIAGNOSE_S),
        KAIWA_JOBS=json.dumps([LONG_JOB]),
        KAIWA_LANGUAGE="en-US",
    )
    proc = Worker(env, stack_dir, name="worker-jobs")
    await proc.start_and_register()
    yield proc
    await proc.stop()


@pytest.fixture(scope="module")
async def jobs_tokens(
    livekit: LiveKitServer, stack_dir: Path, jobs_db: Path
) -> AsyncIterator[TokenServer]:
    env = worker_env(
        livekit, {}, KAIWA_AGENT_NAME=AGENT, KAIWA_DESK_DB=str(jobs_db), **staff_tokens_env()
    )
    proc = TokenServer(env, stack_dir)
    await proc.start_ready()
    yield proc
    await proc.stop()


class Page:
    """What the page receives on kaiwa.jobs."""

    def __init__(self, room: rtc.Room) -> None:
        self.updates: list[dict[str, Any]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        room.register_text_stream_handler("kaiwa.jobs", self._on_stream)

    def _on_stream(self, reader: rtc.TextStreamReader, identity: str) -> None:
        task = asyncio.get_running_loop().create_task(self._read(reader))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read(self, reader: rtc.TextStreamReader) -> None:
        body = json.loads(await reader.read_all())
        assert body["v"] == 1
        self.updates.append(body["job"])

    def of(self, job_id: str) -> list[dict[str, Any]]:
        return [u for u in self.updates if u["id"] == job_id]

    async def wait_for(self, job_id: str, pred: Any, timeout: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for u in self.of(job_id):
                if pred(u):
                    return u
            await asyncio.sleep(0.05)
        raise AssertionError(f"no kaiwa.jobs update {what} for {job_id}: {self.of(job_id)[-3:]}")


@pytest.fixture
async def call(
    jobs_worker: Worker, jobs_tokens: TokenServer, gemini: GeminiLiveFake
) -> AsyncIterator[tuple[Caller, Page, FakeConversation]]:
    caller = Caller(f"{jobs_tokens.url}/token", bearer=STAFF_KEY)
    page = Page(caller.room)
    joined = time.monotonic()
    await caller.join()
    await caller.wait_for_agent(timeout=20)
    conv = await fresh_conversation(gemini, since=joined, timeout=20)
    conv.auto = False
    await conv.wait_for_greeting_request(timeout=15)
    await conv.speak(text="Hello, kaiwa desk.", seconds=0.6)
    yield caller, page, conv
    await caller.leave()
    conv.assert_no_protocol_errors()


def row(db: Path, job_id: str) -> dict[str, Any]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        found = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
    assert found is not None, job_id
    return dict(found)


def results_for(conv: FakeConversation, job_id: str) -> list[ClientContentRecord]:
    """The reply requests that carried this job's result (not lost to a resume)."""
    return [
        c
        for c in conv.client_contents
        if c.turn_complete and not c.lost and f"[kaiwa job {job_id}]" in (c.instructions or "")
    ]


async def start(conv: FakeConversation, name: str, **params: str) -> tuple[str, float]:
    sent = time.monotonic()
    response = await conv.call_tool("start_job", {"name": name, "parameters": params}, timeout=15)
    answered_s = time.monotonic() - sent
    out = tool_output(response)
    assert out["status"] == "running", out
    return str(out["job_id"]), answered_s


async def result_reaches_the_model_once(conv: FakeConversation, job_id: str) -> str:
    rec = await conv.wait_for_client_content(
        lambda c: f"[kaiwa job {job_id}]" in (c.instructions or ""), timeout=DIAGNOSE_S + 20
    )
    await conv.speak(text="The diagnosis has finished.", seconds=0.8)  # the model tells it
    await asyncio.sleep(2.5)  # nothing more comes
    assert len(results_for(conv, job_id)) == 1, [c.instructions for c in conv.client_contents]
    return rec.instructions or ""


async def test_job_progress_on_the_page_result_once_and_on_record(
    call: tuple[Caller, Page, FakeConversation], jobs_db: Path
) -> None:
    _, page, conv = call
    assert conv.tool_behaviors.get("start_job") == "NON_BLOCKING", conv.tool_behaviors
    job_id, answered_s = await start(conv, "diagnose_image", image="disk-01.img")
    assert answered_s < 2.0, answered_s  # answered at once, not after the job
    await conv.speak(text="I've started the diagnosis.", seconds=0.6)

    # the conversation goes on while it runs: another tool, another turn
    status = tool_output(await conv.call_tool("job_status", {"job_id": job_id}, timeout=10))
    assert status["status"] == "running", status
    await conv.speak(text="It is running.", seconds=0.5)
    first = await page.wait_for(job_id, lambda u: (u["percent"] or 0) > 0, 10, "with percent")
    assert first["status"] == "running" and first["name"] == "diagnose_image"
    assert any(line.startswith("PROGRESS") for line in first["lines"]), first

    instructions = await result_reaches_the_model_once(conv, job_id)
    assert "finished successfully" in instructions and "damaged region" in instructions
    percents = [u["percent"] for u in page.of(job_id) if u["percent"] is not None]
    assert percents == sorted(percents) and len(set(percents)) >= 3 and percents[-1] == 100
    assert page.of(job_id)[-1]["status"] == "succeeded"

    r = row(jobs_db, job_id)
    assert (r["name"], r["status"], r["exit_code"], r["actor"]) == (
        "diagnose_image",
        "succeeded",
        0,
        "staff:clerk",
    )
    assert json.loads(r["arguments"]) == {"image": "disk-01.img"}
    assert "RESULT:" in r["output"] and r["delivered_at"] is not None
    assert DIAGNOSE_S * 1000 * 0.9 <= r["duration_ms"] <= (DIAGNOSE_S + 10) * 1000
    print(f"\nstart_job answered in {answered_s * 1000:.0f} ms; job ran {r['duration_ms']} ms")


async def test_cancel_by_voice_stops_the_process(
    call: tuple[Caller, Page, FakeConversation], jobs_db: Path
) -> None:
    _, page, conv = call
    job_id, _ = await start(conv, "long_diagnose", image="disk-02.img")
    await conv.speak(text="Started the long diagnosis.", seconds=0.5)
    update = await page.wait_for(job_id, lambda u: u["pid"] and u["lines"], 10, "with a pid")
    pid = int(update["pid"])
    os.kill(pid, 0)  # running

    cancelled = tool_output(await conv.call_tool("cancel_job", {"job_id": job_id}, timeout=10))
    assert cancelled["status"] == "cancelled", cancelled
    deadline = time.monotonic() + 5
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, f"job process {pid} still runs"
        await asyncio.sleep(0.05)
    await page.wait_for(job_id, lambda u: u["status"] == "cancelled", 5, "cancelled")
    await asyncio.sleep(1.5)
    assert results_for(conv, job_id) == []  # cancel_job's answer was the news
    r = row(jobs_db, job_id)
    assert r["status"] == "cancelled" and r["delivered_at"] is None and r["duration_ms"] < 20_000


async def test_result_survives_a_gemini_reconnect(
    call: tuple[Caller, Page, FakeConversation], jobs_db: Path
) -> None:
    _, page, conv = call
    job_id, _ = await start(conv, "diagnose_image", image="disk-03.img")
    await conv.speak(text="Diagnosis started.", seconds=0.5)
    await page.wait_for(job_id, lambda u: (u["percent"] or 0) >= 10, 10, "at 10%")
    n = len(conv.connections)
    await conv.close(code=1011, reason="injected by test")
    await conv.wait_for_connection(count=n + 1, timeout=30)

    await result_reaches_the_model_once(conv, job_id)
    r = row(jobs_db, job_id)
    assert r["status"] == "succeeded" and r["delivered_at"] is not None


async def test_result_request_lost_in_a_drop_is_given_again_once(
    call: tuple[Caller, Page, FakeConversation], jobs_db: Path
) -> None:
    """The connection dies as the result request arrives (before any reply): the resumed
    server never saw it, so it is sent again, and only one copy counts."""
    _, _, conv = call
    job_id, _ = await start(conv, "diagnose_image", image="disk-04.img")
    await conv.speak(text="Diagnosis started.", seconds=0.5)
    await conv.issue_handle()  # the resumption point: before the result
    first = await conv.wait_for_client_content(
        lambda c: f"[kaiwa job {job_id}]" in (c.instructions or ""), timeout=DIAGNOSE_S + 20
    )
    n = len(conv.connections)
    await conv.close(code=1011, reason="injected by test")
    await conv.wait_for_connection(count=n + 1, timeout=30)
    await result_reaches_the_model_once(conv, job_id)
    assert first.lost, "the first request should count as lost by the resume"
    assert row(jobs_db, job_id)["delivered_at"] is not None


@pytest.mark.browser
async def test_console_shows_job_progress(
    jobs_worker: Worker,
    jobs_tokens: TokenServer,
    gemini: GeminiLiveFake,
    tmp_path: Path,
) -> None:
    """The staff console (real Chromium) shows a voice-started job's progress card, live."""
    from tests.support.browser import chromium, fake_mic_wav, find_chromium, in_ci

    try:
        from playwright.async_api import async_playwright, expect
    except ImportError:  # pragma: no cover
        pytest.skip("python playwright is not installed")
    path = find_chromium()
    if path is None or not (ROOT / "web" / "dist" / "console.html").is_file():
        if in_ci():
            pytest.fail("chromium or web/dist missing (CI=true: browser tests must run)")
        pytest.skip("chromium or web/dist/console.html missing")
    mic = fake_mic_wav(ROOT / "tests" / "fixtures" / "speech_en.wav", tmp_path / "mic.wav")
    async with async_playwright() as pw, chromium(pw, path, mic_wav=mic) as ctx:
        page = await ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.add_init_script(f"sessionStorage.setItem('kaiwa.console.key', '{STAFF_KEY}')")
        await page.goto(f"{jobs_tokens.url}/console")
        await page.wait_for_function("() => window.kaiwaConsole && window.kaiwaConsole.ready")
        since = time.monotonic()
        await page.click("#voice-start")
        conv = await fresh_conversation(gemini, since, timeout=30)
        conv.auto = False
        await conv.wait_for_greeting_request(timeout=15)
        await conv.speak(text="Hello.", seconds=0.6, barge_in=False)
        # the page's UI tools are applied after the greeting (a Gemini restart): let it pass
        deadline = time.monotonic() + 20
        while "get_screen" not in SetupInfo(conv.setups[-1]).tool_names:
            assert time.monotonic() < deadline, "the console's UI tools were not applied"
            await asyncio.sleep(0.1)
        await conv.wait_for_connection(count=len(conv.setups), timeout=10)

        job_id, _ = await start(conv, "diagnose_image", image="disk-05.img")
        await conv.speak(text="Started.", seconds=0.5, barge_in=False)
        card = page.locator(f'#jobs .job[data-job-id="{job_id}"]')
        await expect(card).to_have_attribute("data-status", "running", timeout=10_000)
        await page.wait_for_function(
            f"""() => {{
                const bar = document.querySelector('#jobs .job[data-job-id="{job_id}"] progress');
                return bar && bar.hasAttribute('value') && bar.value >= 20;
            }}""",
            timeout=15_000,
        )
        await expect(card.locator(".job-lines")).to_contain_text("PROGRESS")
        (ROOT / "docs").mkdir(exist_ok=True)
        await page.screenshot(path=str(ROOT / "docs" / "console-job.png"))
        await expect(card).to_have_attribute("data-status", "succeeded", timeout=20_000)
        assert await card.locator("progress").evaluate("b => b.value") == 100
        await conv.wait_for_client_content(
            lambda c: f"[kaiwa job {job_id}]" in (c.instructions or ""), timeout=15
        )
        await conv.speak(text="Done.", seconds=0.5, barge_in=False)
        assert errors == []
        await page.evaluate("window.kaiwaConsole.room && window.kaiwaConsole.room.disconnect()")

"""The staff console in real headless Chromium, operated by the agent through page-declared
UI actions: real livekit-server, the shared worker, a token server with a staff bearer key
and the desk (demo data), and the Gemini fake scripting the model's tool calls.

The page declares its actions (RPC kaiwa.ui.declare) when the agent joins; the worker offers
them as ui_* tools plus get_screen (a Gemini session restart with the resumption handle, once
the greeting is over). The tests share one page and one conversation, in order, like a clerk
at the console. Screenshots go to docs/console-queue.png and docs/console-detail.png.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from desk import Desk
from desk.seed import seed
from tests.fakes.gemini_live import GeminiLiveFake
from tests.fakes.gemini_live.conversation import FakeConversation
from tests.fakes.gemini_live.records import SetupInfo
from tests.support.browser import chromium, fake_mic_wav, find_chromium, in_ci
from tests.support.responses import tool_output
from tests.support.stack import ROOT, LiveKitServer, TokenServer, Worker, worker_env

from .conftest import AGENT_NAME, fresh_conversation

try:
    from playwright.async_api import BrowserContext, Page, async_playwright, expect
except ImportError:  # pragma: no cover - the dev extra installs it
    async_playwright = None  # type: ignore[assignment]

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

SPEECH = ROOT / "tests" / "fixtures" / "speech_en.wav"
DIST = ROOT / "web" / "dist"
DOCS = ROOT / "docs"
STAFF_KEY = "console-test-staff-key-0123456789"
CALLER_KEY = "console-test-caller-key-0123456789"
UI_TOOLS = {"ui_filter", "ui_open_case", "ui_next", "get_screen"}


def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"{reason} (CI=true: browser tests must run)")
    pytest.skip(reason)


@dataclass
class Console:
    page: Page
    conv: FakeConversation
    errors: list[str] = field(default_factory=list)
    round_trips_ms: list[float] = field(default_factory=list)

    async def act(self, tool: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        """The model calls a UI tool; returns the response the fake got (timed)."""
        started = time.monotonic()
        result = await self.conv.call_tool(tool, args or {}, timeout=20)
        if tool.startswith("ui_"):
            self.round_trips_ms.append((time.monotonic() - started) * 1000)
        return result

    async def screen(self) -> dict[str, Any]:
        got = tool_output(await self.conv.call_tool("get_screen", {}, timeout=20))
        assert isinstance(got, dict), got
        return got


async def visible_ids(page: Page) -> list[str]:
    return list(
        await page.eval_on_selector_all("#queue-body tr", "rows => rows.map(r => r.dataset.caseId)")
    )


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def chromium_path() -> str:
    if async_playwright is None:
        _unavailable("python playwright is not installed")
    path = find_chromium()
    if path is None:
        _unavailable("chromium not found (apt-get install chromium, or set CHROMIUM)")
    if not (DIST / "console.html").is_file():
        _unavailable("web/dist/console.html is not built (make web)")
    assert path is not None
    return path


@pytest.fixture(scope="module")
def seeded_desk(desk_db: Path) -> Path:
    desk = Desk.open(desk_db)
    try:
        # the demo data (backdated over weeks), unless this session's desk already has it:
        # other modules write cases too (today's), so look for the old ones
        week_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=7)
        if len(desk.find_cases(created_before=week_ago, limit=10)) < 10:
            seed(desk, customers=30, rng_seed=13)
    finally:
        desk.close()
    return desk_db


@pytest.fixture(scope="module")
async def console_server(
    livekit: LiveKitServer, stack_dir: Path, seeded_desk: Path
) -> AsyncIterator[TokenServer]:
    """A token server whose bearer keys make staff (alice) and a caller (no console)."""
    env = worker_env(
        livekit,
        {},
        KAIWA_AGENT_NAME=AGENT_NAME,
        KAIWA_TOKEN_AUTH="bearer",
        KAIWA_TOKEN_BEARER_KEYS=f"{STAFF_KEY} identity=alice staff, {CALLER_KEY} identity=bob",
        KAIWA_MAX_SESSIONS_PER_IDENTITY="0",
        KAIWA_DESK_DB=str(seeded_desk),
    )
    proc = TokenServer(env, stack_dir)
    await proc.start_ready()
    yield proc
    await proc.stop()


@pytest.fixture(scope="module")
async def browser(
    chromium_path: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[BrowserContext]:
    mic = fake_mic_wav(SPEECH, tmp_path_factory.mktemp("mic") / "speech_48k.wav")
    async with async_playwright() as pw, chromium(pw, chromium_path, mic_wav=mic) as ctx:
        yield ctx


@pytest.fixture(scope="module")
async def console(
    browser: BrowserContext,
    console_server: TokenServer,
    worker: Worker,
    gemini: GeminiLiveFake,
) -> AsyncIterator[Console]:
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    await page.add_init_script(f"sessionStorage.setItem('kaiwa.console.key', '{STAFF_KEY}')")
    await page.goto(f"{console_server.url}/console")
    await page.wait_for_function(
        "() => window.kaiwaConsole && window.kaiwaConsole.ready", timeout=15_000
    )

    since = time.monotonic()
    await page.click("#voice-start")
    conv = await fresh_conversation(gemini, since, timeout=30)
    conv.auto = False
    await conv.wait_for_greeting_request(timeout=15)
    await conv.speak(text="Hello, this is kaiwa.", seconds=1.0, barge_in=False)
    # The page declared its actions when the agent joined; once the greeting is over the
    # worker updates the tools (Gemini restarts and resumes the same conversation).
    deadline = time.monotonic() + 20
    while not UI_TOOLS <= set(SetupInfo(conv.setups[-1]).tool_names):
        assert time.monotonic() < deadline, f"no UI tools: {SetupInfo(conv.setups[-1]).tool_names}"
        await asyncio.sleep(0.1)
    await conv.wait_for_connection(count=len(conv.setups), timeout=10)
    c = Console(page=page, conv=conv, errors=errors)
    yield c
    if c.round_trips_ms:
        rt = sorted(c.round_trips_ms)
        p95 = rt[min(len(rt) - 1, round(0.95 * (len(rt) - 1)))]
        print(
            f"UI action round trip (fake's call → page → response at the fake), n={len(rt)}: "
            f"p50 {statistics.median(rt):.0f} ms, p95 {p95:.0f} ms, max {rt[-1]:.0f} ms"
        )
    await page.evaluate("window.kaiwaConsole.room && window.kaiwaConsole.room.disconnect()")
    await page.close()


# ------------------------------------------------------------------------------ tests


async def test_console_api_is_for_staff_only(console_server: TokenServer) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=console_server.url) as http:
        ok = await http.get(
            "/api/console/summary", headers={"Authorization": f"Bearer {STAFF_KEY}"}
        )
        assert ok.status_code == 200 and ok.json()["counts"]["quoted"] >= 1, ok.text
        refused = await http.get(
            "/api/console/cases", headers={"Authorization": f"Bearer {CALLER_KEY}"}
        )
        assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
        assert (await http.get("/api/console/cases/R-1001")).status_code == 401


async def test_filter_to_quoted_filters_the_queue(console: Console) -> None:
    page = console.page
    result = await console.act("ui_filter", {"status": "quoted"})
    assert "quoted" in str(tool_output(result)), result
    await expect(page.locator("#filter-status")).to_have_value("quoted")
    badges = page.locator("#queue-body tr [data-col=status] .status-badge")
    await expect(badges.first).to_be_visible()
    statuses = await badges.evaluate_all("els => els.map(e => e.dataset.status)")
    assert statuses and set(statuses) == {"quoted"}, statuses
    # what the model sees is what is on screen
    screen = await console.screen()
    assert screen["filters"]["status"] == "quoted"
    assert screen["visible"] == (await visible_ids(page))[: len(screen["visible"])]


async def test_open_the_third_one_opens_what_was_third(console: Console) -> None:
    page = console.page
    await console.act("ui_filter", {"status": "all"})
    await expect(page.locator("#filter-status")).to_have_value("")
    on_screen = await visible_ids(page)
    assert len(on_screen) >= 5
    # "open the third one": the model reads the screen, then opens visible[2]
    screen = await console.screen()
    third = screen["visible"][2]
    assert third == on_screen[2]
    result = await console.act("ui_open_case", {"case_id": third})
    assert third in str(tool_output(result)), result
    await expect(page.locator("#detail")).to_be_visible()
    await expect(page.locator("#detail")).to_have_attribute("data-case-id", third)
    await expect(page.locator("#detail-history li").first).to_contain_text("by ")
    assert (await console.screen())["selected"] == third


async def test_next_case_moves_on(console: Console) -> None:
    page = console.page
    on_screen = await visible_ids(page)
    current = await page.get_attribute("#detail", "data-case-id")
    assert current in on_screen
    expected = on_screen[on_screen.index(current) + 1]
    result = await console.act("ui_next")
    assert expected in str(tool_output(result)), result
    await expect(page.locator("#detail")).to_have_attribute("data-case-id", expected)
    # a bad argument comes back as a sentence, and nothing changes
    bad = await console.act("ui_open_case", {"position": "third"})
    assert "must be an integer" in bad.get("error", ""), bad
    await expect(page.locator("#detail")).to_have_attribute("data-case-id", expected)


async def test_case_opened_by_click_is_this_case(console: Console) -> None:
    page = console.page
    await page.click("#detail-back")
    await expect(page.locator("#detail")).to_be_hidden()
    row = page.locator("#queue-body tr").nth(4)
    clicked = await row.get_attribute("data-case-id")
    clicked_at = time.monotonic()
    await row.click()
    await expect(page.locator("#detail")).to_have_attribute("data-case-id", clicked or "")
    # the context reaches the worker on its own (no action involved): poll get_screen
    deadline = time.monotonic() + 5
    while (screen := await console.screen())["selected"] != clicked:
        assert time.monotonic() < deadline, screen
        await asyncio.sleep(0.2)
    print(f"click → get_screen reports it: {(time.monotonic() - clicked_at) * 1000:.0f} ms")
    assert screen["view"] == "case"
    # and voice acts on it: a note typed by voice shows in the form as unsaved
    await console.act("ui_fill_field", {"field": "note", "value": "Customer will call back."})
    await expect(page.locator("#note-input")).to_have_value("Customer will call back.")
    await expect(page.locator("#note-dirty")).to_be_visible()
    assert (await console.screen())["form"]["dirty"] == ["note"]


async def test_screenshots(console: Console) -> None:
    page = console.page
    await page.set_viewport_size({"width": 1280, "height": 900})
    await console.act("ui_close")
    await expect(page.locator("#detail")).to_be_hidden()
    # Latin names first: this machine may lack CJK fonts for Japanese names
    await console.act("ui_sort", {"by": "customer_name", "direction": "asc"})
    await expect(page.locator("th[aria-sort=ascending] [data-sort=customer_name]")).to_be_visible()
    DOCS.mkdir(exist_ok=True)
    await page.screenshot(path=str(DOCS / "console-queue.png"))
    await console.act("ui_open_case", {"position": 2})
    await expect(page.locator("#detail")).to_be_visible()
    await page.screenshot(path=str(DOCS / "console-detail.png"))
    assert console.errors == []


async def test_filter_by_received_days_by_voice(console: Console, seeded_desk: Path) -> None:
    """Voice: "show the cases received between ... and ...": ui_filter with from/to (the days in
    the business's time zone), combined with what is on screen; a bad day is a sentence."""
    page = console.page
    zone = ZoneInfo(await page.evaluate("window.kaiwaConsole.state.timezone"))
    with sqlite3.connect(seeded_desk) as conn:
        opened = {
            f"R-{num}": dt.datetime.fromisoformat(at).astimezone(zone).date().isoformat()
            for num, at in conn.execute("SELECT num, created_at FROM cases")
        }
    days = sorted(opened.values())
    day_from, day_to = days[len(days) // 4], days[len(days) // 2]
    expected = {cid for cid, day in opened.items() if day_from <= day <= day_to}
    assert 0 < len(expected) < len(opened) <= 100

    result = await console.act("ui_filter", {"from": day_from, "to": day_to})
    said = str(tool_output(result))
    assert f"shows {len(expected)} case" in said and f"received {day_from} to {day_to}" in said
    await expect(page.locator("#filter-from")).to_have_value(day_from)
    await expect(page.locator("#filter-to")).to_have_value(day_to)
    await expect(page.locator("#queue-body tr")).to_have_count(len(expected))
    assert set(await visible_ids(page)) == expected
    screen = await console.screen()
    assert (screen["filters"]["from"], screen["filters"]["to"]) == (day_from, day_to)

    # combined with a status: only the given filter changes
    await console.act("ui_filter", {"status": "received"})
    await expect(page.locator("#filter-status")).to_have_value("received")
    await expect(page.locator("#filter-from")).to_have_value(day_from)
    statuses = await page.locator("#queue-body tr [data-col=status] .status-badge").evaluate_all(
        "els => els.map(e => e.dataset.status)"
    )
    assert set(statuses) <= {"received"}
    assert set(await visible_ids(page)) <= expected

    # a day that doesn't exist, a range backwards: sentences, and nothing changes
    bad = await console.act("ui_filter", {"to": "2026-02-30"})
    assert '"2026-02-30" is not a date' in bad.get("error", ""), bad
    backwards = await console.act("ui_filter", {"from": day_to, "to": day_from})
    if day_from != day_to:
        assert "is after to" in backwards.get("error", ""), backwards
    await expect(page.locator("#filter-to")).to_have_value(day_to)

    # cleared by voice too
    await console.act("ui_filter", {"status": "all", "from": "", "to": ""})
    await expect(page.locator("#filter-from")).to_have_value("")
    await expect(page.locator("#queue-body tr")).to_have_count(len(opened))
    assert console.errors == []

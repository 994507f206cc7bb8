"""The staff console's call views in real headless Chromium: a call record seeded through the
desk API (Desk.calls), served by a real token server (staff bearer key) from the same desk.

Checked with the keyboard where a clerk would use it: `2` opens the call list, Enter the
call; its detail shows both sides' transcript in time order with the tool call inline (its
outcome and the case it touched), the interrupted agent turn marked, the recovery, the cost
and the turn latency; the case the tool touched lists the call, and Esc goes back. No
livekit-server or worker is needed (the console's data is the desk). Screenshot:
docs/console-call.png.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from desk import Desk
from desk.calls import CallBatch, RecoveryRecord, Segment, ToolRecord, TurnRecord, Usage
from tests.support.browser import chromium, fake_mic_wav, find_chromium, in_ci
from tests.support.stack import ROOT, LiveKitServer, TokenServer, worker_env

try:
    from playwright.async_api import Page, async_playwright, expect
except ImportError:  # pragma: no cover - the dev extra installs it
    async_playwright = None  # type: ignore[assignment]

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

SPEECH = ROOT / "tests" / "fixtures" / "speech_en.wav"
DIST = ROOT / "web" / "dist"
DOCS = ROOT / "docs"
STAFF_KEY = "console-calls-staff-key-0123456789"
T0 = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=5)

# (speaker, text, interrupted) at seconds into the call; the tool at 9 s, the recovery at 15 s
SEGMENTS = [
    (1.0, "agent", "Hello, data recovery reception. How can I help?", False),
    (4.0, "caller", "My disk is clicking. Please open a case for Ada Byron.", False),
    (7.0, "agent", "Of course, one moment while I open it.", False),
    (11.0, "agent", "Your case is open. The number is", True),
    (13.0, "caller", "Sorry, what was the number again?", False),
    (18.0, "agent", "After the reconnect: your case number is on screen.", False),
]
COST = 0.0123


def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"{reason} (CI=true: browser tests must run)")
    pytest.skip(reason)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


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
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A desk with one case and one ended call whose create_case tool touched it."""
    db = tmp_path_factory.mktemp("calls") / "desk.sqlite3"
    desk = Desk.open(db)
    try:
        case = desk.create_case(
            customer_name="Ada Byron", device_type="HDD", symptom="clicking", phone="0312345678"
        )
        scope = "kaiwa-console-calls:AJ_one"
        call_id = desk.calls.write(
            CallBatch(
                scope=scope,
                room="kaiwa-console-calls",
                job_id="AJ_one",
                started_at=T0,
                role="caller",
                identity="user-ada",
                channel="web",
                model="gemini-live-test",
                currency="USD",
                segments=[Segment(at(s), who, text, cut) for s, who, text, cut in SEGMENTS],
                tools=[
                    ToolRecord(
                        at(9.0),
                        "fc-create-1",
                        "create_case",
                        '{"customer_name": "Ada Byron", "phone": "***-****-5678"}',
                        "ok",
                        212,
                        case_id=case.id,
                    )
                ],
                recoveries=[RecoveryRecord(at(15.0), "gemini_reconnect", 1.4, '{"code": 1011}')],
                turns=[TurnRecord(at(4.5), 640), TurnRecord(at(13.5), 910, tool_ms=0)],
                usage=Usage(input_audio=1800, input_text=120, output_audio=2400, output_text=60),
                cost=COST,
            )
        )
        desk.calls.write(
            CallBatch(
                scope=scope,
                room="kaiwa-console-calls",
                job_id="AJ_one",
                ended_at=at(21.0),
                end_reason="caller_left",
            )
        )
    finally:
        desk.close()
    return db, f"C-{call_id}", case.id


@pytest.fixture(scope="module")
async def server(
    seeded: tuple[Path, str, str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[TokenServer]:
    # the console reads the desk only: a LiveKit URL where nothing listens is enough
    nowhere = LiveKitServer(binary="unused")
    env = worker_env(
        nowhere,
        {},
        KAIWA_TOKEN_AUTH="bearer",
        KAIWA_TOKEN_BEARER_KEYS=f"{STAFF_KEY} identity=alice staff",
        KAIWA_DESK_DB=str(seeded[0]),
    )
    proc = TokenServer(env, tmp_path_factory.mktemp("calls-token"))
    await proc.start_ready()
    yield proc
    await proc.stop()


@pytest.fixture(scope="module")
async def page(
    chromium_path: str, server: TokenServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Page]:
    mic = fake_mic_wav(SPEECH, tmp_path_factory.mktemp("mic") / "speech_48k.wav")
    async with async_playwright() as pw, chromium(pw, chromium_path, mic_wav=mic) as ctx:
        page = await ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
        await page.add_init_script(f"sessionStorage.setItem('kaiwa.console.key', '{STAFF_KEY}')")
        await page.goto(f"{server.url}/console")
        await page.wait_for_function(
            "() => window.kaiwaConsole && window.kaiwaConsole.ready", timeout=15_000
        )
        yield page
        assert errors == []


async def test_call_detail_shows_the_call_on_the_record(
    page: Page, seeded: tuple[Path, str, str]
) -> None:
    _, ref, case_id = seeded
    await page.set_viewport_size({"width": 1280, "height": 1240})
    # keyboard: 2 → the call list, Enter → the most recent call
    await page.keyboard.press("2")
    first = page.locator("#calls-body tr").first
    await expect(first).to_have_attribute("data-call-id", ref)
    await expect(page.locator("#tab-calls")).to_have_attribute("aria-current", "page")
    row = {
        col: (await first.locator(f"td[data-col={col}]").inner_text()).strip()
        for col in ("role", "identity", "duration", "end_reason", "cost")
    }
    assert row == {
        "role": "caller",
        "identity": "user-ada",
        "duration": "0:21",
        "end_reason": "caller_left",
        "cost": "$0.0123",
    }, row
    await page.locator("#calls-body").focus()
    await page.keyboard.press("Enter")
    detail = page.locator("#call-detail")
    await expect(detail).to_be_visible()
    await expect(detail).to_have_attribute("data-call-id", ref)

    items = page.locator("#call-timeline > li")
    await expect(items).to_have_count(len(SEGMENTS) + 2)
    timeline = await items.evaluate_all(
        """els => els.map(e => ({kind: e.dataset.kind, speaker: e.dataset.speaker || null,
            interrupted: e.dataset.interrupted || null, tool: e.dataset.tool || null,
            outcome: e.dataset.outcome || null, recovery: e.dataset.recovery || null,
            text: (e.querySelector('.text') || {}).textContent || ''}))"""
    )
    said = [(i["speaker"], i["text"]) for i in timeline if i["kind"] == "segment"]
    assert said == [(who, text) for _, who, text, _ in SEGMENTS], said
    kinds = [i["kind"] for i in timeline]
    # the tool call between the agent's "one moment" and its answer; the recovery after the
    # caller's question
    assert kinds == [
        "segment",
        "segment",
        "segment",
        "tool",
        "segment",
        "segment",
        "recovery",
        "segment",
    ], kinds
    tool = timeline[3]
    assert (tool["tool"], tool["outcome"]) == ("create_case", "ok"), tool
    tool_li = items.nth(3)
    await expect(tool_li.locator(".flag.outcome")).to_have_text("ok")
    await expect(tool_li.locator(".case-link")).to_have_attribute("data-case-id", case_id)
    await expect(tool_li).to_contain_text("***-****-5678")  # the redacted arguments
    assert timeline[4]["interrupted"] == "true"
    await expect(items.nth(4).locator(".flag.interrupted")).to_be_visible()
    assert timeline[6]["recovery"] == "gemini_reconnect"
    await expect(items.nth(6)).to_contain_text("1.4 s")

    await expect(page.locator("#call-cost")).to_have_text("$0.0123")
    await expect(page.locator("#call-recoveries")).to_contain_text("gemini_reconnect")
    await expect(page.locator("#call-latency")).to_contain_text("p50 640 ms")
    await expect(page.locator("#call-latency")).to_contain_text("p95 910 ms")
    await expect(page.locator("#call-usage")).to_contain_text("in 1920")
    DOCS.mkdir(exist_ok=True)
    await page.screenshot(path=str(DOCS / "console-call.png"), full_page=True)

    # Esc back to the list, with the cursor on the call
    await page.keyboard.press("Escape")
    await expect(page.locator("#calls-view")).to_be_visible()
    await expect(page.locator("#calls-body tr.cursor")).to_have_attribute("data-call-id", ref)


async def test_case_detail_lists_the_call(page: Page, seeded: tuple[Path, str, str]) -> None:
    _, ref, case_id = seeded
    await page.keyboard.press("1")
    await expect(page.locator("#queue-view")).to_be_visible()
    await page.locator(f"#queue-body tr[data-case-id='{case_id}']").click()
    await expect(page.locator("#detail")).to_have_attribute("data-case-id", case_id)
    listed = page.locator("#detail-calls li[data-call-id]")
    await expect(listed).to_have_count(1)
    await expect(listed).to_have_attribute("data-call-id", ref)
    await listed.locator("button").click()
    await expect(page.locator("#call-detail")).to_have_attribute("data-call-id", ref)
    # Esc from a call opened on a case goes back to the case
    await page.keyboard.press("Escape")
    await expect(page.locator("#detail")).to_have_attribute("data-case-id", case_id)
    await expect(page.locator("#call-detail")).to_be_hidden()
    # and the tool call's case link opens the case it touched
    await listed.locator("button").click()
    await page.locator("#call-timeline .case-link").click()
    await expect(page.locator("#detail")).to_have_attribute("data-case-id", case_id)
    await expect(page.locator("#call-detail")).to_be_hidden()

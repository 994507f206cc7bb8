"""The console's talk key in real headless Chromium against a push-to-talk worker.

Chromium's fake microphone plays speech the whole time: only what it plays while Space is
held reaches the fake Gemini, between activityStart and activityEnd.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes.gemini_live import GeminiLiveFake
from tests.support.browser import chromium, fake_mic_wav, find_chromium, in_ci
from tests.support.stack import ROOT, LiveKitServer, TokenServer, Worker, worker_env

from .conftest import fresh_conversation

try:
    from playwright.async_api import async_playwright, expect
except ImportError:  # pragma: no cover - the dev extra installs it
    async_playwright = None  # type: ignore[assignment]

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

AGENT = "kaiwa-ptt-browser"
SPEECH = ROOT / "tests" / "fixtures" / "speech_en.wav"
DIST = ROOT / "web" / "dist"
STAFF_KEY = "ptt-test-staff-key-0123456789"


def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"{reason} (CI=true: browser tests must run)")
    pytest.skip(reason)


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
async def ptt_stack(
    livekit: LiveKitServer, gemini: GeminiLiveFake, stack_dir: Path
) -> AsyncIterator[TokenServer]:
    db = str(stack_dir / "ptt-browser.sqlite3")
    worker = Worker(
        worker_env(
            livekit,
            gemini.env(),
            KAIWA_AGENT_NAME=AGENT,
            KAIWA_DESK_DB=db,
            KAIWA_TURN_MODE="push_to_talk",
            KAIWA_LANGUAGE="en-US",
        ),
        stack_dir,
        name="worker-ptt-browser",
    )
    await worker.start_and_register()
    tokens = TokenServer(
        worker_env(
            livekit,
            {},
            KAIWA_AGENT_NAME=AGENT,
            KAIWA_TOKEN_AUTH="bearer",
            KAIWA_TOKEN_BEARER_KEYS=f"{STAFF_KEY} identity=clerk staff",
            KAIWA_MAX_SESSIONS_PER_IDENTITY="0",
            KAIWA_DESK_DB=db,
        ),
        stack_dir,
    )
    await tokens.start_ready()
    yield tokens
    await tokens.stop()
    await worker.stop()


async def test_space_held_is_the_only_way_in(
    chromium_path: str,
    ptt_stack: TokenServer,
    gemini: GeminiLiveFake,
    tmp_path: Path,
) -> None:
    mic = fake_mic_wav(SPEECH, tmp_path / "speech_48k.wav")
    async with async_playwright() as pw, chromium(pw, chromium_path, mic_wav=mic) as ctx:
        page = await ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
        await page.add_init_script(f"sessionStorage.setItem('kaiwa.console.key', '{STAFF_KEY}')")
        await page.goto(f"{ptt_stack.url}/console")
        await page.wait_for_function(
            "() => window.kaiwaConsole && window.kaiwaConsole.ready", timeout=15_000
        )
        since = time.monotonic()
        await page.click("#voice-start")
        conv = await fresh_conversation(gemini, since, timeout=30)
        assert conv.manual_activity
        await conv.wait_for_greeting_request(timeout=15)
        talk = page.locator("#ptt")
        await expect(talk).to_be_visible(timeout=15_000)
        await expect(talk).to_have_attribute("aria-pressed", "false")

        # the fake microphone talks all along; nothing of it goes to Gemini
        await asyncio.sleep(3.0)
        assert not conv.audio and not conv.activity and not conv.user_turns

        await page.locator("h1").click()  # focus on the page, not a text field
        await page.keyboard.down("Space")
        await expect(talk).to_have_attribute("aria-pressed", "true")
        start = await conv.wait_for_activity("activityStart", timeout=5)
        await conv.wait_for_voiced_audio(1.0, timeout=10, since=start.at)
        replies = len(conv.speeches)
        await page.keyboard.up("Space")
        await expect(talk).to_have_attribute("aria-pressed", "false")
        end = await conv.wait_for_activity("activityEnd", timeout=5)
        assert sum(c.voiced_seconds for c in conv.audio if c.at < start.at) == 0.0
        await gemini.wait_until(lambda: len(conv.speeches) > replies, timeout=10, what="a reply")

        # released: the microphone goes on talking, Gemini hears none of it
        await asyncio.sleep(0.5)
        chunks = len(conv.audio)
        await asyncio.sleep(2.0)
        assert len(conv.audio) == chunks
        assert [a.kind for a in conv.activity] == ["activityStart", "activityEnd"]
        assert end.at > start.at
        assert not errors, errors
        await page.evaluate("window.kaiwaConsole.room && window.kaiwaConsole.room.disconnect()")

"""The talk key in real headless Chromium: the console on a push-to-talk worker, and the
caller page and the <kaiwa-voice> widget of a counter whose credential is push-to-talk on
the shared open-mic worker.

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
from tests.fakes.gemini_live.conversation import FakeConversation
from tests.support.browser import chromium, fake_mic_wav, require_chromium
from tests.support.stack import ROOT, LiveKitServer, TokenServer, Worker, worker_env

from .conftest import AGENT_NAME, fresh_conversation

try:
    from playwright.async_api import Locator, Page, async_playwright, expect
except ImportError:  # pragma: no cover - the dev extra installs it
    async_playwright = None  # type: ignore[assignment]

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

AGENT = "kaiwa-ptt-browser"
SPEECH = ROOT / "tests" / "fixtures" / "speech_en.wav"
STAFF_KEY = "ptt-test-staff-key-0123456789"
COUNTER = "counter-1"  # the reception counter's identity, set by the (simulated) proxy


@pytest.fixture(scope="module")
def chromium_path() -> str:
    return require_chromium("index.html", "console.html", "widget.js")


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

        await hold_space_to_talk(page, talk, conv, gemini, focus=page.locator("h1"))
        assert not errors, errors
        await page.evaluate("window.kaiwaConsole.room && window.kaiwaConsole.room.disconnect()")


async def hold_space_to_talk(
    page: Page, talk: Locator, conv: FakeConversation, gemini: GeminiLiveFake, *, focus: Locator
) -> None:
    """The fake mic talks all along; only what it says while Space is held reaches Gemini."""
    await expect(talk).to_be_visible(timeout=15_000)
    await expect(talk).to_have_attribute("aria-pressed", "false")
    await asyncio.sleep(3.0)
    assert not conv.audio and not conv.activity and not conv.user_turns

    await focus.click()  # focus on the page, not a text field
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


@pytest.fixture(scope="module")
async def counter_tokens(livekit: LiveKitServer, stack_dir: Path) -> AsyncIterator[TokenServer]:
    """Tokens for the shared open-mic worker behind a proxy: the counter's user is listed
    in KAIWA_PTT_IDENTITIES (the browser sends the header a trusted proxy would set)."""
    tokens = TokenServer(
        worker_env(
            livekit,
            {},
            KAIWA_AGENT_NAME=AGENT_NAME,
            KAIWA_TOKEN_AUTH="proxy",
            KAIWA_PTT_IDENTITIES=COUNTER,
            KAIWA_MAX_SESSIONS_PER_IDENTITY="0",
        ),
        stack_dir,
        name="token-server-counter-browser",
    )
    await tokens.start_ready()
    yield tokens
    await tokens.stop()


@pytest.mark.parametrize("client", ["caller page", "widget"])
async def test_a_counter_holds_the_turn_on_the_caller_page_and_the_widget(
    client: str,
    chromium_path: str,
    counter_tokens: TokenServer,
    worker: Worker,
    gemini: GeminiLiveFake,
    tmp_path: Path,
) -> None:
    mic = fake_mic_wav(SPEECH, tmp_path / "speech_48k.wav")
    async with async_playwright() as pw, chromium(pw, chromium_path, mic_wav=mic) as ctx:
        await ctx.set_extra_http_headers({"X-Forwarded-User": COUNTER})
        page = await ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
        if client == "widget":
            await page.goto(f"{counter_tokens.url}/examples/orders.html")
            await page.wait_for_function("() => customElements.get('kaiwa-voice')")
            start, talk = "kaiwa-voice [part=start]", page.locator("kaiwa-voice [part=talk]")
        else:
            await page.goto(f"{counter_tokens.url}/")
            start, talk = "#start", page.locator("#ptt")
        since = time.monotonic()
        await page.click(start)
        conv = await fresh_conversation(gemini, since, timeout=30)
        assert conv.manual_activity, "the counter's call must run without automatic VAD"
        await conv.wait_for_greeting_request(timeout=15)
        await hold_space_to_talk(page, talk, conv, gemini, focus=page.locator("h1"))
        assert not errors, errors

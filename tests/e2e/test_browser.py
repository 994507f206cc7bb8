"""The web page in real headless Chromium against the real stack: livekit-server, the worker,
the token server (which serves web/dist) and the Gemini Live fake.

Chromium's fake microphone plays tests/fixtures/speech_en.wav in a loop. Everything is
asserted the way a person would notice it: what the page shows, and what it plays (the
level of the agent's audio track measured in the page, `window.kaiwa.levels.agent`).

One browser and one conversation are shared by the tests in order (they build on each
other like a real call); the TokenSource test uses its own page and room. Screenshots go to
artifacts/browser/. Under CI=true a missing Chromium or web build is a failure, not a skip.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from desk import Desk
from tests.fakes.gemini_live import GeminiLiveFake
from tests.fakes.gemini_live.conversation import FakeConversation
from tests.support.browser import SCREENSHOTS, chromium, fake_mic_wav, find_chromium, in_ci
from tests.support.stack import ROOT, TokenServer, Worker

from .conftest import AGENT_NAME, fresh_conversation

try:
    from playwright.async_api import BrowserContext, Page, async_playwright, expect
except ImportError:  # pragma: no cover - the dev extra installs it
    async_playwright = None  # type: ignore[assignment]

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

SPEECH = ROOT / "tests" / "fixtures" / "speech_en.wav"
DIST = ROOT / "web" / "dist"
LIVEKIT_UMD = ROOT / "web" / "node_modules" / "livekit-client" / "dist" / "livekit-client.umd.js"
GREETING = "Hello, this is kaiwa. How can I help you today?"
LOUD = 0.02  # window.kaiwa.levels.agent (RMS, 0..1) while the agent's voice plays
QUIET = 0.005  # ... and once it has stopped
INTERRUPT_BOUND_MS = 1500  # click → the agent's audio is silent in the page


def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"{reason} (CI=true: browser tests must run)")
    pytest.skip(reason)


@dataclass
class Live:
    """The shared call: one page in one room with the agent, and its fake Gemini session."""

    page: Page
    conv: FakeConversation
    errors: list[str] = field(default_factory=list)
    greeting: asyncio.Task[Any] | None = None


async def shot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def agent_level_peak(page: Page, ms: int) -> float:
    """The highest agent level seen in the page over `ms` milliseconds (sampled per frame)."""
    return float(
        await page.evaluate(
            """ms => new Promise(resolve => {
                 const t0 = performance.now(); let peak = 0;
                 const tick = () => {
                   peak = Math.max(peak, window.kaiwa.levels.agent);
                   if (performance.now() - t0 >= ms) resolve(peak);
                   else requestAnimationFrame(tick);
                 };
                 requestAnimationFrame(tick);
               })""",
            ms,
        )
    )


async def wait_agent_loud(page: Page, timeout_ms: int = 15_000) -> None:
    await page.wait_for_function(f"window.kaiwa.levels.agent > {LOUD}", timeout=timeout_ms)


async def start_call(page: Page) -> None:
    """Press Start and wait for the agent to join; press Reconnect once if it never came
    (what a person would do when the page says the agent did not join)."""
    for attempt in (1, 2):
        await page.click("#start" if attempt == 1 else "#reconnect")
        try:
            await page.wait_for_function(
                "() => window.kaiwa.state.agentIdentity || !document.getElementById('reconnect')"
                ".hidden",
                timeout=25_000,
            )
        except Exception as e:
            await shot(page, "0-failed-to-connect")
            raise AssertionError(
                f"the page did not start a call: {await page.evaluate('window.kaiwa.state')}"
            ) from e
        if await page.evaluate("window.kaiwa.state.agentIdentity"):
            return
        error = await page.evaluate("window.kaiwa.state.error")
        print(f"agent did not join (attempt {attempt}): {error}")
    await shot(page, "0-no-agent")
    raise AssertionError(f"no agent joined: {await page.evaluate('window.kaiwa.state')}")


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def chromium_path() -> str:
    if async_playwright is None:
        _unavailable("python playwright is not installed")
    path = find_chromium()
    if path is None:
        _unavailable("chromium not found (apt-get install chromium, or set CHROMIUM)")
    if not (DIST / "index.html").is_file():
        _unavailable("web/dist is not built (make web)")
    assert path is not None
    return path


@pytest.fixture(scope="module")
async def browser(
    chromium_path: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[BrowserContext]:
    mic = fake_mic_wav(SPEECH, tmp_path_factory.mktemp("mic") / "speech_48k.wav")
    async with async_playwright() as pw, chromium(pw, chromium_path, mic_wav=mic) as ctx:
        yield ctx


@pytest.fixture(scope="module")
async def live(
    browser: BrowserContext,
    token_server: TokenServer,
    worker: Worker,
    gemini: GeminiLiveFake,
) -> AsyncIterator[Live]:
    """Open the page, press Start, and take over the agent's Gemini session."""
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.on(
        "console",
        lambda m: errors.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None,
    )
    await page.goto(f"{token_server.url}/")
    await page.wait_for_function("() => window.kaiwa && window.kaiwa.state", timeout=10_000)
    await expect(page.locator("#connection-state")).to_have_attribute("data-state", "disconnected")

    since = time.monotonic()
    await start_call(page)
    conv = await fresh_conversation(gemini, since, timeout=30)
    conv.auto = False
    live = Live(page=page, conv=conv, errors=errors)
    # Gemini must start answering the greeting request within 5 s, so answer it here; the
    # tests check what the page makes of it.
    await conv.wait_for_greeting_request(timeout=15)
    live.greeting = asyncio.create_task(conv.speak(text=GREETING, seconds=3.0, barge_in=False))
    yield live
    if live.greeting is not None and not live.greeting.done():
        live.greeting.cancel()
    await page.close()


# ------------------------------------------------------------------------------ the call


async def test_page_connects_and_shows_agent_state(live: Live) -> None:
    page = live.page
    await expect(page.locator("#connection-state")).to_have_attribute(
        "data-state", "connected", timeout=20_000
    )
    # The agent joined (explicit dispatch from the token server) and its state is shown.
    await expect(page.locator("#agent-state")).to_have_attribute(
        "data-state", "speaking", timeout=15_000
    )
    state = await page.evaluate("window.kaiwa.state")
    assert state["agentIdentity"], state
    assert state["roomName"], state
    assert state["micEnabled"] and not state["muted"], state
    await expect(page.locator("#interrupt")).to_be_enabled()


async def test_agent_greeting_is_heard_and_shown(live: Live) -> None:
    page = live.page
    await wait_agent_loud(page)
    await shot(page, "1-greeting")
    agent_msg = page.locator('#transcript .msg[data-speaker="agent"]')
    await expect(agent_msg.first).to_contain_text("How can I help you today?", timeout=15_000)
    assert live.greeting is not None
    result = await asyncio.wait_for(live.greeting, 15)
    assert result.completed and not result.interrupted
    await expect(agent_msg.first).to_have_attribute("data-final", "true", timeout=10_000)
    # The voice stops with the turn and the agent goes back to listening.
    await expect(page.locator("#agent-state")).to_have_attribute(
        "data-state", "listening", timeout=10_000
    )
    await page.wait_for_function(f"window.kaiwa.levels.agent < {QUIET}", timeout=5_000)


async def test_browser_microphone_reaches_gemini(live: Live) -> None:
    # The fake mic loops a spoken WAV: the page meters it, Gemini receives it, non-silent.
    await live.page.wait_for_function("window.kaiwa.levels.user > 0.01", timeout=10_000)
    voiced = await live.conv.wait_for_voiced_audio(seconds=1.5, timeout=20)
    assert voiced >= 1.5


async def test_typed_chat_reaches_gemini_and_reply_shows(live: Live) -> None:
    page, conv = live.page, live.conv
    await page.fill("#chat-input", "Please call me back tomorrow.")
    await page.press("#chat-input", "Enter")
    user_msg = page.locator('#transcript .msg[data-speaker="user"][data-source="chat"]')
    await expect(user_msg.last).to_contain_text("call me back tomorrow")
    await expect(page.locator("#chat-input")).to_have_value("")

    text = await conv.wait_for_user_text(timeout=15)
    assert "call me back tomorrow" in text
    await conv.wait_for_reply_request(timeout=10)
    reply = await conv.speak(text="Sure, we will call you back tomorrow.", barge_in=False)
    assert reply.completed
    agent_msg = page.locator('#transcript .msg[data-speaker="agent"]')
    await expect(agent_msg.last).to_contain_text("call you back tomorrow", timeout=10_000)
    await shot(page, "2-chat")


async def test_interrupt_button_stops_agent_audio(live: Live) -> None:
    page, conv = live.page, live.conv
    long_text = "Let me explain our data recovery process in a lot of detail. " * 3
    speech = asyncio.create_task(conv.speak(text=long_text, seconds=10.0, barge_in=False))
    try:
        await wait_agent_loud(page)
        await expect(page.locator("#agent-state")).to_have_attribute("data-state", "speaking")
        assert await agent_level_peak(page, 300) > LOUD
        await expect(page.locator("#interrupt.btn-attention")).to_be_visible()

        await page.evaluate(
            """document.getElementById('interrupt').addEventListener('click',
                 () => { window.__clickedAt = performance.now(); }, {capture: true, once: true})"""
        )
        await page.click("#interrupt")
        # Time from the click until the agent's audio has stayed silent for 300 ms.
        silent_after_ms = await page.evaluate(
            """([quiet, bound]) => new Promise((resolve, reject) => {
                 const t0 = window.__clickedAt; let lastLoud = performance.now();
                 const tick = () => {
                   const now = performance.now();
                   if (window.kaiwa.levels.agent > quiet) lastLoud = now;
                   if (now - lastLoud >= 300) return resolve(lastLoud - t0);
                   if (now - t0 > bound + 3000) return reject(new Error('still playing'));
                   requestAnimationFrame(tick);
                 };
                 requestAnimationFrame(tick);
               })""",
            [QUIET, INTERRUPT_BOUND_MS],
        )
        print(f"agent audio silent {silent_after_ms:.0f} ms after the interrupt click")
        assert silent_after_ms < INTERRUPT_BOUND_MS, silent_after_ms
        assert not speech.done(), "the fake finished its turn: nothing was interrupted"
        await expect(page.locator("#agent-state")).not_to_have_attribute(
            "data-state", "speaking", timeout=5_000
        )
        # The rest of the fake's turn never reaches the speaker.
        assert await agent_level_peak(page, 1000) < LOUD
        await shot(page, "3-interrupted")
    finally:
        await conv.send_interrupted(timeout=10)
        await asyncio.wait_for(speech, 15)


async def test_tool_indicator_shows_while_a_tool_runs(live: Live, desk_db: Path) -> None:
    page, conv = live.page, live.conv
    case = Desk.open(desk_db).create_case(
        customer_name="Yamada Taro", phone="090-1234-5678", device_type="HDD",
        symptom="The disk clicks and is not recognised.",
    )  # fmt: skip
    indicator = page.locator("#tool-indicator")
    await expect(indicator).to_be_hidden()
    # the page is an anonymous caller: they verify before any case is discussed
    verified = await conv.call_tool("verify_caller", {"case_id": case.id, "phone_last4": "5678"})
    assert "verified" in json.dumps(verified), verified
    # check_lab_progress takes ~3 s (KAIWA_LAB_DELAY_S): long enough to see on screen.
    call_id = await conv.send_tool_call("check_lab_progress", {"case_id": case.id})
    await expect(indicator).to_be_visible(timeout=5_000)
    await expect(indicator).to_contain_text("check_lab_progress")
    assert await page.evaluate("window.kaiwa.state.tools") == ["check_lab_progress"]
    await shot(page, "4-tool-running")
    response = await conv.wait_for_tool_response(call_id, timeout=20)
    assert "output" in response, response
    await expect(indicator).to_be_hidden(timeout=5_000)
    # Gemini then says what the tool found; the page shows it.
    await conv.speak(text="The device is in the queue for diagnosis.", barge_in=False)
    agent_msg = page.locator('#transcript .msg[data-speaker="agent"]')
    await expect(agent_msg.last).to_contain_text("queue for diagnosis", timeout=10_000)


async def test_agent_shows_case_card_over_rpc(live: Live, desk_db: Path) -> None:
    page, conv = live.page, live.conv
    desk = Desk.open(desk_db)
    case = desk.create_case(
        # the same customer as the tool-indicator test (one browser call is one customer:
        # a verified call is bound to that customer's cases)
        customer_name="Yamada Taro", phone="090-1234-5678", device_type="SSD",
        symptom="Laptop SSD not detected after a power cut.",
    )  # fmt: skip
    desk.update_status(case.id, "diagnosing", actor="staff:lab")
    desk.set_quote(case.id, 48000, actor="staff:lab")
    card = page.locator("#case-card")
    # the page is an anonymous caller: verified first, then shown masked
    verified = await conv.call_tool("verify_caller", {"case_id": case.id, "phone_last4": "5678"})
    assert "verified" in json.dumps(verified), verified
    result = await conv.call_tool("show_case", {"case_id": case.id}, timeout=20)
    assert "output" in result and "true" in json.dumps(result).lower(), result
    await expect(card).to_be_visible(timeout=5_000)
    await expect(card).to_have_attribute("data-case-id", case.id)
    await expect(page.locator("#case-status")).to_have_attribute("data-status", "quoted")
    await expect(card).to_contain_text("Yamada Taro")
    await expect(card).not_to_contain_text("090-1234-5678")

    # The caller approves the quote: proposed, confirmed by their typed yes, and the card
    # updates in place.
    proposal = await conv.call_tool(
        "respond_to_quote", {"case_id": case.id, "decision": "approve"}, timeout=20
    )
    pid = re.search(r"cf-[0-9a-f]{6}", json.dumps(proposal))
    assert pid is not None, proposal
    await page.fill("#chat-input", "Yes, please go ahead.")
    await page.press("#chat-input", "Enter")
    await conv.wait_for_user_text(timeout=10)
    result = await conv.call_tool("confirm_action", {"confirmation_id": pid.group(0)}, timeout=20)
    assert "approved" in json.dumps(result), result
    await expect(page.locator("#case-status")).to_have_attribute(
        "data-status", "approved", timeout=5_000
    )
    assert desk.get_case(case.id).status.value == "approved"
    await conv.speak(text=f"Case {case.id} is approved; recovery starts.", barge_in=False)
    # The card takes room from the transcript; its newest message must stay in view.
    newest = page.locator('#transcript .msg[data-speaker="agent"]').last
    await expect(newest).to_contain_text("recovery starts", timeout=10_000)
    await expect(newest).to_be_in_viewport()
    await page.wait_for_function(f"window.kaiwa.levels.agent < {QUIET}", timeout=10_000)
    await shot(page, "5-case-card")

    await conv.call_tool("clear_screen", {}, timeout=20)
    await expect(card).to_be_hidden(timeout=5_000)


async def test_leave_ends_the_call(live: Live) -> None:
    page = live.page
    await page.click("#disconnect")
    await expect(page.locator("#connection-state")).to_have_attribute(
        "data-state", "disconnected", timeout=10_000
    )
    await expect(page.locator("#start")).to_be_visible()
    await expect(page.locator("#agent-state")).to_have_attribute("data-state", "absent")
    # the transcript stays readable after the call
    assert await page.locator("#transcript .msg").count() >= 4
    assert [e for e in live.errors if not e.startswith("warning")] == []


# ------------------------------------------------------------------- TokenSource.endpoint


async def test_livekit_token_source_endpoint(
    browser: BrowserContext,
    token_server: TokenServer,
    worker: Worker,
    gemini: GeminiLiveFake,
) -> None:
    """LiveKit's own client (livekit-client's TokenSource.endpoint, the UMD build from
    web/node_modules) gets a token from the token server, joins, and the agent comes."""
    if not LIVEKIT_UMD.is_file():
        _unavailable("web/node_modules is missing (cd web && npm ci)")
    page = await browser.new_page()
    try:
        await page.goto(f"{token_server.url}/healthz")  # same origin as /token, no page script
        await page.add_script_tag(path=str(LIVEKIT_UMD))
        since = time.monotonic()
        got = await page.evaluate(
            """async (agentName) => {
                 const { TokenSource, Room, decodeTokenPayload } = window.LivekitClient;
                 const source = TokenSource.endpoint('/token');
                 const details = await source.fetch({ agentName });
                 const claims = decodeTokenPayload(details.participantToken);
                 const room = new Room();
                 window.tsRoom = room;
                 await room.connect(details.serverUrl, details.participantToken);
                 let refused = null;
                 try {
                   await TokenSource.endpoint('/token').fetch({ agentName: 'not-' + agentName });
                 } catch (e) { refused = String(e && e.message || e); }
                 return {
                   serverUrl: details.serverUrl,
                   claims,
                   roomName: room.name,
                   identity: room.localParticipant.identity,
                   refused,
                 };
               }""",
            AGENT_NAME,
        )
        claims = got["claims"]
        assert got["serverUrl"].startswith("ws://127.0.0.1:")
        assert got["roomName"] == claims["video"]["room"] and got["roomName"]
        assert got["identity"] == claims["sub"] and got["identity"]
        dispatched = [a.get("agentName") for a in claims["roomConfig"]["agents"]]
        assert dispatched == [AGENT_NAME], claims
        # The SDK surfaces the 4xx for an agent name the server does not allow.
        assert got["refused"] and "received 403" in got["refused"], got["refused"]

        # The token works: the agent is dispatched into that room and joins it.
        await page.wait_for_function(
            "() => [...window.tsRoom.remoteParticipants.values()].some(p => p.isAgent)",
            timeout=30_000,
        )
        await fresh_conversation(gemini, since, timeout=30)  # claim it, so no test gets it
        await page.evaluate("window.tsRoom.disconnect()")
    finally:
        await page.close()

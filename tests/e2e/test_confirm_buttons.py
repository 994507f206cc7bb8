"""Confirm / Decline buttons for the agent's pending confirmation, in real headless Chromium
against the real stack (livekit-server, the shared worker, token servers, the Gemini fake).

The fake plays the model: it proposes (a tool that only proposes), the page shows the
summary with two buttons (the agent's `kaiwa.confirmation` attribute), nothing is written;
a press reaches the worker (RPC kaiwa.confirm), the worker tells the model in the
conversation, and the "model" (the test) then calls confirm_action: the change is in the
database. A Decline leaves the database as it was and the prompt goes away.

The caller page is an anonymous caller: the caller's own consequential action is approving
a quote (respond_to_quote). The widget (web/examples/orders.html) runs as a staff member
(bearer key marked staff) and sets a quote (set_quote).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from desk import Desk
from tests.fakes.gemini_live import GeminiLiveFake
from tests.fakes.gemini_live.conversation import FakeConversation
from tests.support.browser import SCREENSHOTS, chromium, fake_mic_wav, require_chromium
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

from .conftest import AGENT_NAME, fresh_conversation
from .test_browser import start_call

try:
    from playwright.async_api import BrowserContext, Locator, Page, async_playwright, expect
except ImportError:  # pragma: no cover - the dev extra installs it
    async_playwright = None  # type: ignore[assignment]

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

SPEECH = ROOT / "tests" / "fixtures" / "speech_en.wav"


@pytest.fixture(scope="module")
def chromium_path() -> str:
    return require_chromium("index.html", "widget.js")


@pytest.fixture(scope="module")
async def browser(
    chromium_path: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[BrowserContext]:
    mic = fake_mic_wav(SPEECH, tmp_path_factory.mktemp("mic") / "speech_48k.wav")
    async with async_playwright() as pw, chromium(pw, chromium_path, mic_wav=mic) as ctx:
        yield ctx


@pytest.fixture(scope="module")
async def staff_token_server(livekit: LiveKitServer, stack_dir: Path) -> AsyncIterator[TokenServer]:
    """Tokens for the shared worker's agent, signed kaiwa.role=staff for the staff key."""
    proc = TokenServer(
        worker_env(livekit, {}, KAIWA_AGENT_NAME=AGENT_NAME, **staff_tokens_env()), stack_dir
    )
    await proc.start_ready()
    yield proc
    await proc.stop()


async def until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def quoted_case(desk: Desk, name: str, phone: str, quote: int | None) -> str:
    case = desk.create_case(customer_name=name, phone=phone, device_type="HDD",
                            symptom="Clicking noise, not mounting.")  # fmt: skip
    desk.update_status(case.id, "diagnosing", actor="staff:lab")
    if quote is not None:
        desk.set_quote(case.id, quote, actor="staff:lab")
    return case.id


async def propose(conv: FakeConversation, tool: str, args: dict[str, Any]) -> tuple[str, str]:
    """The "model" proposes: (confirmation_id, summary)."""
    out = tool_output(await conv.call_tool(tool, args, timeout=20))
    assert out["needs_confirmation"] is True, out
    return str(out["confirmation_id"]), str(out["summary"])


async def told(conv: FakeConversation, pid: str) -> str:
    """The worker's message to the model after a press (reply instructions naming the id)."""
    rec = await conv.wait_for_client_content(lambda c: pid in (c.instructions or ""), timeout=15)
    return rec.instructions or ""


async def shows(prompt: Locator, pid: str, summary: str) -> None:
    box = prompt.locator(".kaiwa-confirm-box")
    await expect(box).to_be_visible(timeout=10_000)
    await expect(box).to_have_attribute("data-confirmation-id", pid)
    await expect(prompt.locator(".kaiwa-confirm-summary")).to_have_text(summary)
    await expect(prompt.locator("[data-answer=yes]")).to_be_enabled()
    await expect(prompt.locator("[data-answer=no]")).to_be_enabled()


async def take_over(conv: FakeConversation) -> None:
    conv.auto = False
    await conv.wait_for_greeting_request(timeout=15)
    await conv.speak(text="Hello, this is kaiwa.", seconds=1.0, barge_in=False)


async def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def page_errors(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    return errors


async def test_caller_page_confirm_and_decline(
    browser: BrowserContext,
    token_server: TokenServer,
    worker: Worker,
    gemini: GeminiLiveFake,
    desk_db: Path,
) -> None:
    desk = Desk.open(desk_db)
    first = quoted_case(desk, "Confirm Kobayashi", "090-4321-8765", 48_000)
    second = quoted_case(desk, "Confirm Kobayashi", "090-4321-8765", 52_000)
    page = await browser.new_page()
    errors = page_errors(page)
    await page.goto(f"{token_server.url}/")
    await page.wait_for_function("() => window.kaiwa && window.kaiwa.state", timeout=10_000)
    since = time.monotonic()
    await start_call(page)
    conv = await fresh_conversation(gemini, since, timeout=30)
    await take_over(conv)
    verified = await conv.call_tool("verify_caller", {"case_id": first, "phone_last4": "8765"})
    assert "verified" in json.dumps(verified), verified
    prompt = page.locator("#confirm .kaiwa-confirm")
    await expect(prompt.locator(".kaiwa-confirm-box")).to_be_hidden()

    # Confirm: the summary is on screen, nothing is written until the model confirms
    pid, summary = await propose(
        conv, "respond_to_quote", {"case_id": first, "decision": "approve"}
    )
    await shows(prompt, pid, summary)
    await shot(page, "confirm-prompt-page")
    assert first in summary
    assert desk.get_case(first).status.value == "quoted"
    await prompt.locator("[data-answer=yes]").click()
    instructions = await told(conv, pid)
    assert (
        "pressed Confirm" in instructions
        and f"confirm_action with confirmation_id {pid}" in instructions
    )
    await expect(prompt.locator(".kaiwa-confirm-box")).to_be_hidden(timeout=10_000)
    await expect(prompt.locator(".kaiwa-confirm-result")).to_have_text(
        "Confirmed. The agent is carrying it out."
    )
    assert desk.get_case(first).status.value == "quoted"  # the press alone changes nothing
    result = await conv.call_tool("confirm_action", {"confirmation_id": pid}, timeout=20)
    assert "approved" in json.dumps(result), result
    await until(lambda: desk.get_case(first).status.value == "approved", "the approval")
    await conv.speak(text=f"Done: case {first} is approved.", seconds=1.0, barge_in=False)

    # Decline: the prompt goes away, the model is told, nothing changes
    pid2, summary2 = await propose(
        conv, "respond_to_quote", {"case_id": second, "decision": "approve"}
    )
    await shows(prompt, pid2, summary2)
    await prompt.locator("[data-answer=no]").click()
    instructions = await told(conv, pid2)
    assert "pressed Decline" in instructions and "do not call confirm_action" in instructions
    await expect(prompt.locator(".kaiwa-confirm-box")).to_be_hidden(timeout=10_000)
    await expect(prompt.locator(".kaiwa-confirm-result")).to_have_text(
        "Declined. Nothing was changed."
    )
    refused = await conv.call_tool("confirm_action", {"confirmation_id": pid2}, timeout=20)
    assert "said no" in refused.get("error", ""), refused
    assert desk.get_case(second).status.value == "quoted"
    assert desk.get_case(second).quote_yen == 52_000
    await page.click("#disconnect")
    assert errors == []
    await page.close()
    desk.close()


async def test_widget_confirm_and_decline(
    browser: BrowserContext,
    staff_token_server: TokenServer,
    worker: Worker,
    gemini: GeminiLiveFake,
    desk_db: Path,
) -> None:
    desk = Desk.open(desk_db)
    case = quoted_case(desk, "Widget Nakamura", "080-2468-1357", None)  # diagnosing, no quote
    page = await browser.new_page()
    errors = page_errors(page)
    await page.goto(f"{staff_token_server.url}/examples/orders.html")
    await page.wait_for_function("() => customElements.get('kaiwa-voice')")
    # the host page's own choice: a staff key (the worker then offers set_quote)
    await page.evaluate(
        f"document.querySelector('kaiwa-voice').setAttribute('token-key', '{STAFF_KEY}')"
    )
    since = time.monotonic()
    await page.click("kaiwa-voice [part=start]")
    conv = await fresh_conversation(gemini, since, timeout=30)
    await take_over(conv)
    prompt = page.locator("kaiwa-voice .kaiwa-confirm")

    # Confirm: set_quote only proposes; the quote is written after the press + confirm_action
    pid, summary = await propose(conv, "set_quote", {"case_id": case, "amount_yen": "55,000"})
    await shows(prompt, pid, summary)
    await shot(page, "confirm-prompt-widget")
    assert "55,000 yen" in summary
    assert desk.get_case(case).quote_yen is None
    await page.locator("kaiwa-voice [part=confirm-yes]").click()
    instructions = await told(conv, pid)
    assert f"confirm_action with confirmation_id {pid}" in instructions
    result = await conv.call_tool("confirm_action", {"confirmation_id": pid}, timeout=20)
    assert "55,000 yen" in json.dumps(result), result
    await until(lambda: desk.get_case(case).quote_yen == 55_000, "the quote")
    assert desk.get_case(case).status.value == "quoted"
    await expect(prompt.locator(".kaiwa-confirm-box")).to_be_hidden(timeout=10_000)
    await expect(page.locator("kaiwa-voice [part=confirm-result]")).to_have_text(
        "Confirmed. The agent is carrying it out."
    )
    await conv.speak(text="The quote is set.", seconds=1.0, barge_in=False)

    # Decline: a new quote is proposed and declined; the database keeps 55,000 yen
    pid2, summary2 = await propose(conv, "set_quote", {"case_id": case, "amount_yen": "60000"})
    await shows(prompt, pid2, summary2)
    await page.locator("kaiwa-voice [part=confirm-no]").click()
    instructions = await told(conv, pid2)
    assert "pressed Decline" in instructions
    await expect(prompt.locator(".kaiwa-confirm-box")).to_be_hidden(timeout=10_000)
    await expect(page.locator("kaiwa-voice [part=confirm-result]")).to_have_text(
        "Declined. Nothing was changed."
    )
    refused = await conv.call_tool("confirm_action", {"confirmation_id": pid2}, timeout=20)
    assert "said no" in refused.get("error", ""), refused
    assert desk.get_case(case).quote_yen == 55_000
    await page.evaluate("document.querySelector('kaiwa-voice').stop()")
    assert errors == []
    await page.close()
    desk.close()


async def test_console_confirm(
    browser: BrowserContext,
    staff_token_server: TokenServer,
    worker: Worker,
    gemini: GeminiLiveFake,
    desk_db: Path,
) -> None:
    """The staff console mounts the same prompt: a quote proposed by voice is written only
    after the clerk's Confirm (and the model's confirm_action)."""
    desk = Desk.open(desk_db)
    case = quoted_case(desk, "Console Watanabe", "070-1357-2468", None)
    page = await browser.new_page()
    errors = page_errors(page)
    await page.add_init_script(f"sessionStorage.setItem('kaiwa.console.key', '{STAFF_KEY}')")
    await page.goto(f"{staff_token_server.url}/console")
    await page.wait_for_function(
        "() => window.kaiwaConsole && window.kaiwaConsole.ready", timeout=15_000
    )
    since = time.monotonic()
    await page.click("#voice-start")
    conv = await fresh_conversation(gemini, since, timeout=30)
    await take_over(conv)
    prompt = page.locator("#confirm .kaiwa-confirm")

    pid, summary = await propose(conv, "set_quote", {"case_id": case, "amount_yen": "42,000"})
    await shows(prompt, pid, summary)
    assert desk.get_case(case).quote_yen is None
    await prompt.locator("[data-answer=yes]").click()
    assert f"confirm_action with confirmation_id {pid}" in await told(conv, pid)
    assert desk.get_case(case).quote_yen is None  # the press alone changes nothing
    await conv.call_tool("confirm_action", {"confirmation_id": pid}, timeout=20)
    await until(lambda: desk.get_case(case).quote_yen == 42_000, "the quote")
    await expect(prompt.locator(".kaiwa-confirm-box")).to_be_hidden(timeout=10_000)
    await page.click("#voice-stop")
    await expect(prompt).to_have_count(0)  # unmounted with the call
    assert errors == []
    await page.close()
    desk.close()

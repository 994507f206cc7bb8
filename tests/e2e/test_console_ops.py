"""Case operations by hand in the staff console (real headless Chromium, the real token
server, a fresh desk): edit a contact, record a payment through the confirmation step,
attach a photo; the database and the history (who did what) are checked."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from desk import Desk
from tests.support.browser import chromium, fake_mic_wav, find_chromium, in_ci
from tests.support.stack import ROOT, LiveKitServer, TokenServer, worker_env

from .conftest import AGENT_NAME

try:
    from playwright.async_api import BrowserContext, async_playwright, expect
except ImportError:  # pragma: no cover - the dev extra installs it
    async_playwright = None  # type: ignore[assignment]

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

SPEECH = ROOT / "tests" / "fixtures" / "speech_en.wav"
DIST = ROOT / "web" / "dist"
STAFF_KEY = "console-ops-staff-key-0123456789"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 200


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
def ops_desk(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A desk of its own with one case quoted at 50,000 yen."""
    path = tmp_path_factory.mktemp("ops") / "desk.sqlite3"
    desk = Desk.open(path)
    try:
        case = desk.create_case(customer_name="Ops Tanaka", device_type="SSD",
                                symptom="not detected", phone="090-1234-5678")  # fmt: skip
        desk.update_status(case.id, "diagnosing")
        desk.set_quote(case.id, 50_000)
    finally:
        desk.close()
    return path, case.id


@pytest.fixture(scope="module")
async def ops_server(
    livekit: LiveKitServer, stack_dir: Path, ops_desk: tuple[Path, str]
) -> AsyncIterator[TokenServer]:
    env = worker_env(
        livekit,
        {},
        KAIWA_AGENT_NAME=AGENT_NAME,
        KAIWA_TOKEN_AUTH="bearer",
        KAIWA_TOKEN_BEARER_KEYS=f"{STAFF_KEY} identity=alice staff",
        KAIWA_DESK_DB=str(ops_desk[0]),
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


def query(db: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


async def until(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_edit_contact_and_record_a_payment_by_hand(
    browser: BrowserContext, ops_server: TokenServer, ops_desk: tuple[Path, str]
) -> None:
    db, cid = ops_desk
    num = int(cid[2:])
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    await page.add_init_script(f"sessionStorage.setItem('kaiwa.console.key', '{STAFF_KEY}')")
    await page.goto(f"{ops_server.url}/console")
    await page.wait_for_function("() => window.kaiwaConsole && window.kaiwaConsole.ready")
    await page.click(f"#row-{cid}")
    await expect(page.locator("#detail")).to_have_attribute("data-case-id", cid)

    # edit the contact
    await expect(page.locator("#ops-phone")).to_have_value("090-1234-5678")
    await page.fill("#ops-phone", "080-2222-3333")
    await page.fill("#ops-email", "Ops.Tanaka@Example.jp")
    await page.click("#ops-contact button[type=submit]")
    await until(lambda: query(db, "SELECT phone, email FROM cases WHERE num = ?", num)
                == [("080-2222-3333", "ops.tanaka@example.jp")])  # fmt: skip
    await expect(page.locator("#detail-fields")).to_contain_text("080-2222-3333")

    # record a payment: nothing is written before Confirm
    await page.fill("#ops-amount", "20000")
    await page.select_option("#ops-method", "card")
    await page.click("#ops-payment button[type=submit]")
    summary = page.locator("#ops-payment .ops-confirm .summary")
    await expect(summary).to_contain_text("30,000")
    await asyncio.sleep(0.3)
    assert query(db, "SELECT COUNT(*) FROM payments") == [(0,)]
    await page.click("#ops-payment [data-confirm=yes]")
    await until(lambda: query(db, "SELECT amount_yen, method, actor FROM payments")
                == [(20_000, "card", "staff:alice")])  # fmt: skip
    await expect(page.locator("#ops-info")).to_have_attribute("data-balance", "30000")

    # attach a photo (by hand only)
    await page.set_input_files(
        "#ops-file", files=[{"name": "front.png", "mimeType": "image/png", "buffer": PNG}]
    )
    await page.click("#ops-attach button[type=submit]")
    await until(lambda: query(db, "SELECT name, content_type, size FROM attachments")
                == [("front.png", "image/png", len(PNG))])  # fmt: skip
    await expect(page.locator("#ops-attachments")).to_contain_text("front.png")

    # the history says who did what, in the database and on the page
    rows = query(db, "SELECT actor, action, new FROM history WHERE case_num = ? ORDER BY id", num)
    mine = [(a, n) for actor, a, n in rows if actor == "staff:alice"]
    assert mine == [
        ("phone", "080-2222-3333"),
        ("email", "ops.tanaka@example.jp"),
        ("payment", "20,000 yen by card"),
        ("attachment", f"front.png (image/png, {len(PNG)} bytes)"),
    ]
    history = page.locator("#detail-history")
    await expect(history.locator("li[data-action=payment]")).to_contain_text("staff:alice")
    await expect(history.locator("li[data-action=phone]")).to_contain_text("staff:alice")
    assert errors == []
    await page.close()

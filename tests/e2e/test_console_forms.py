"""The console's forms by hand, in real headless Chromium against the real token server and a
desk of its own: open a case at tablet width with the keyboard (a refused phone number is a
sentence next to the field, a double submit opens one case), set a quote through the review
step (the database changes only on Confirm), and narrow the queue by the days cases were
received (in the business's time zone, KAIWA_TIMEZONE)."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from desk import Desk
from tests.support.browser import chromium, fake_mic_wav, require_chromium
from tests.support.stack import ROOT, LiveKitServer, TokenServer, worker_env

from .conftest import AGENT_NAME

try:
    from playwright.async_api import BrowserContext, Page, Request, async_playwright, expect
except ImportError:  # pragma: no cover - the dev extra installs it
    async_playwright = None  # type: ignore[assignment]

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

SPEECH = ROOT / "tests" / "fixtures" / "speech_en.wav"
STAFF_KEY = "console-forms-staff-key-0123456789"
UTC = dt.UTC


@pytest.fixture(scope="module")
def chromium_path() -> str:
    return require_chromium("console.html")


@pytest.fixture(scope="module")
def forms_desk(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """Four cases received on known days (Tokyo) and one being diagnosed (today)."""
    path = tmp_path_factory.mktemp("forms") / "desk.sqlite3"
    desk = Desk.open(path)

    def opened(when: dt.datetime, name: str, device: str) -> str:
        return (
            Desk(desk.store, clock=lambda: when)
            .create_case(customer_name=name, device_type=device, symptom="clicks")
            .id
        )

    try:
        ids = {
            "mar1": opened(dt.datetime(2026, 3, 1, 5, 0, tzinfo=UTC), "Abe Jun", "HDD"),
            # 00:30 on 2 March in Tokyo, still 1 March in UTC
            "mar2": opened(dt.datetime(2026, 3, 1, 15, 30, tzinfo=UTC), "Baba Yui", "HDD"),
            "mar5": opened(dt.datetime(2026, 3, 5, 3, 0, tzinfo=UTC), "Chiba Ken", "SSD"),
            "mar9": opened(dt.datetime(2026, 3, 9, 3, 0, tzinfo=UTC), "Doi Mai", "HDD"),
        }
        quoted = desk.create_case(customer_name="Mori Sho", device_type="RAID/NAS",
                                  symptom="degraded array")  # fmt: skip
        desk.update_status(quoted.id, "diagnosing")
        ids["diagnosing"] = quoted.id
    finally:
        desk.close()
    return path, ids


@pytest.fixture(scope="module")
async def forms_server(
    livekit: LiveKitServer, stack_dir: Path, forms_desk: tuple[Path, dict[str, str]]
) -> AsyncIterator[TokenServer]:
    env = worker_env(
        livekit,
        {},
        KAIWA_AGENT_NAME=AGENT_NAME,
        KAIWA_TOKEN_AUTH="bearer",
        KAIWA_TOKEN_BEARER_KEYS=f"{STAFF_KEY} identity=alice staff",
        KAIWA_DESK_DB=str(forms_desk[0]),
        KAIWA_TIMEZONE="Asia/Tokyo",
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


@pytest.fixture
async def page(browser: BrowserContext, forms_server: TokenServer) -> AsyncIterator[Page]:
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    await page.add_init_script(f"sessionStorage.setItem('kaiwa.console.key', '{STAFF_KEY}')")
    await page.goto(f"{forms_server.url}/console")
    await page.wait_for_function(
        "() => window.kaiwaConsole && window.kaiwaConsole.ready", timeout=15_000
    )
    yield page
    assert errors == []
    await page.close()


def query(db: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll the database (which has no events to wait on), bounded."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def queue_ids(page: Page) -> list[str]:
    return list(
        await page.eval_on_selector_all("#queue-body tr", "rows => rows.map(r => r.dataset.caseId)")
    )


async def test_create_a_case_by_hand_at_tablet_width(
    page: Page, forms_desk: tuple[Path, dict[str, str]]
) -> None:
    db, _ = forms_desk
    before = query(db, "SELECT COUNT(*) FROM cases")[0][0]
    await page.set_viewport_size({"width": 820, "height": 1180})  # a tablet, portrait
    keys: list[str | None] = []

    def on_request(req: Request) -> None:
        if req.method == "POST" and req.url.endswith("/api/console/cases"):
            keys.append(req.headers.get("idempotency-key"))

    page.on("request", on_request)

    # the keyboard opens the form, and the cursor is in its first field
    await page.locator("#queue-body").focus()
    await page.keyboard.press("n")
    await expect(page.locator("#new-case-view")).to_be_visible()
    await expect(page.locator("#new-name")).to_be_focused()
    await page.keyboard.type("Kato Aya")
    await page.keyboard.press("Tab")
    await page.keyboard.type("12")  # too short: the desk says so next to the phone field
    await page.fill("#new-email", "aya.kato@example.jp")
    await page.select_option("#new-device", "SD card")
    await page.fill("#new-symptom", "Camera says the card is unreadable")
    # fits a tablet: no sideways scrolling, the submit button on screen
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    await expect(page.locator("#new-case-submit")).to_be_in_viewport()
    await page.focus("#new-phone")
    await page.keyboard.press("Enter")
    phone_error = page.locator("#new-case-form [data-error-for=phone]")
    await expect(phone_error).to_have_text(
        "The phone number given is too short; please ask for the full number."
    )
    await expect(page.locator("#new-phone")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#new-phone")).to_be_focused()
    assert query(db, "SELECT COUNT(*) FROM cases")[0][0] == before

    # corrected, then submitted twice at once: one case
    await page.fill("#new-phone", "090-7777-1234")
    await expect(phone_error).to_be_hidden()
    await page.evaluate(
        "() => { const f = document.getElementById('new-case-form');"
        " f.requestSubmit(); f.requestSubmit(); }"
    )
    detail = page.locator("#detail")
    await expect(detail).to_be_visible()
    new_id = await detail.get_attribute("data-case-id")
    assert new_id
    await expect(page.locator("#detail-title")).to_have_text(f"{new_id} · Kato Aya")
    await expect(page.locator("#detail-history li[data-action=created]")).to_contain_text(
        "staff:alice"
    )
    rows = query(db, "SELECT customer_name, phone, device_type, status FROM cases"
                     " WHERE num = ?", int(new_id[2:]))  # fmt: skip
    assert rows == [("Kato Aya", "090-7777-1234", "SD card", "received")]
    assert query(db, "SELECT COUNT(*) FROM cases")[0][0] == before + 1
    # one key for the form: the refused try and the case it opened
    assert len(keys) == 2 and keys[0] and keys[0] == keys[1], keys

    # back in the queue, it is there
    await page.keyboard.press("Escape")
    await expect(page.locator("#queue-view")).to_be_visible()
    await expect(page.locator(f"#row-{new_id}")).to_be_visible()
    # the next form is a new one (a new key), empty
    await page.click("#new-case")
    await expect(page.locator("#new-name")).to_have_value("")
    await page.click("#new-case-cancel")
    await expect(page.locator("#queue-view")).to_be_visible()


async def test_set_a_quote_by_hand_changes_nothing_until_confirm(
    page: Page, forms_desk: tuple[Path, dict[str, str]]
) -> None:
    db, ids = forms_desk
    cid = ids["diagnosing"]
    num = int(cid[2:])
    await page.click(f"#row-{cid}")
    await expect(page.locator("#detail")).to_have_attribute("data-case-id", cid)
    await expect(page.locator("#ops-quote")).to_be_visible()

    def quote() -> list[tuple[Any, ...]]:
        return query(db, "SELECT quote_yen, status FROM cases WHERE num = ?", num)

    # a bad amount: the desk's sentence next to the field, no review step
    await page.fill("#ops-quote-amount", "lots")
    await page.press("#ops-quote-amount", "Enter")
    await expect(page.locator("#ops-quote-error")).to_contain_text("whole number of yen")
    await expect(page.locator("#ops-quote .ops-confirm")).to_have_count(0)

    # the review step (its text comes from the server's check); nothing written, Back
    await page.fill("#ops-quote-amount", "55,000")
    await page.press("#ops-quote-amount", "Enter")
    review = page.locator("#ops-quote .ops-confirm")
    await expect(review.locator(".summary")).to_have_text(f"Set the quote for {cid} to ¥55,000?")
    assert quote() == [(None, "diagnosing")]
    await review.locator("[data-confirm=no]").click()
    await expect(review).to_have_count(0)
    await expect(page.locator("#ops-quote-amount")).to_be_focused()
    assert quote() == [(None, "diagnosing")]

    # again, with the keyboard: Enter reviews, Enter on the focused Confirm applies
    await page.keyboard.press("Enter")
    await expect(review.locator("[data-confirm=yes]")).to_be_focused()
    assert quote() == [(None, "diagnosing")]
    await page.keyboard.press("Enter")
    await until(lambda: quote() == [(55_000, "quoted")])
    await expect(review).to_have_count(0)
    await expect(page.locator("#detail-status")).to_have_attribute("data-status", "quoted")
    await expect(page.locator("#detail-fields")).to_contain_text("¥55,000")
    await expect(page.locator("#detail-history li[data-action=quote_yen]")).to_contain_text(
        "staff:alice"
    )
    assert query(db, "SELECT actor, new FROM history WHERE case_num = ? AND action = 'quote_yen'",
                 num) == [("staff:alice", "55000")]  # fmt: skip


async def test_the_date_range_narrows_the_queue(
    page: Page, forms_desk: tuple[Path, dict[str, str]]
) -> None:
    _, ids = forms_desk
    everything = await queue_ids(page)
    assert set(ids.values()) <= set(everything)
    await page.click("th [data-sort=created_at]")  # oldest received first
    await expect(page.locator("th[aria-sort=ascending] [data-sort=created_at]")).to_be_visible()

    rows = page.locator("#queue-body tr")
    await page.fill("#filter-from", "2026-03-02")
    await page.fill("#filter-to", "2026-03-05")
    await expect(rows).to_have_count(2)
    assert await queue_ids(page) == [ids["mar2"], ids["mar5"]]
    # the received day is shown in the business's zone: 2 March (1 March in UTC)
    await expect(page.locator(f"#row-{ids['mar2']} td[data-col=created_at]")).to_have_text(
        "2 Mar 2026"
    )
    await expect(page.locator("#queue-count")).to_have_text("2 of 2 cases")

    # with the other filters
    await page.select_option("#filter-device", "SSD")
    await expect(rows).to_have_count(1)
    assert await queue_ids(page) == [ids["mar5"]]
    await page.select_option("#filter-device", "")
    await expect(rows).to_have_count(2)

    # a range backwards is a sentence, and the queue shows nothing
    await page.fill("#filter-from", "2026-03-09")
    await expect(page.locator("#filter-error")).to_have_text(
        'The "from" day is after the "to" day; swap them or widen the range.'
    )
    await expect(rows).to_have_count(0)
    await page.fill("#filter-to", "")
    await expect(page.locator("#filter-error")).to_be_hidden()
    since_mar9 = [i for i in everything if i not in (ids["mar1"], ids["mar2"], ids["mar5"])]
    await expect(rows).to_have_count(len(since_mar9))  # with the ones opened today
    assert (await queue_ids(page))[0] == ids["mar9"]
    await page.fill("#filter-from", "")
    await expect(rows).to_have_count(len(everything))
    state = await page.evaluate("window.kaiwaConsole.context().filters")
    assert (state["from"], state["to"]) == ("", "")

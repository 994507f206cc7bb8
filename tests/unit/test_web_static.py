"""The built web page (web/dist) in headless Chromium, without a token server or LiveKit.

Skips when web/dist, Chromium or Playwright is missing, except under CI=true, where that is a
failure (CI must run `npm ci && npm run build` in web/ first). Never downloads a browser.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.browser import ARGS, find_chromium, in_ci

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "web" / "dist"
CHROMIUM = find_chromium() or "/usr/bin/chromium"
IN_CI = in_ci()
IDS = [
    "start", "disconnect", "mute", "camera", "screen", "interrupt", "chat-input", "chat-send",
    "transcript", "agent-state", "connection-state", "tool-indicator", "case-card", "case-status",
    "notice", "error",
]  # fmt: skip


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: build web/ and install chromium before the tests)")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    if not (DIST / "index.html").is_file() or not (DIST / "app.js").is_file():
        _unavailable("web/dist not built (cd web && npm ci && npm run build)")
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "http.server",
            str(port),
            "--bind",
            "127.0.0.1",
            "--directory",
            str(DIST),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if time.monotonic() > deadline:
                raise TimeoutError("http.server did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        proc.wait(5)


@pytest.fixture(scope="module")
def playwright():  # type: ignore[no-untyped-def]
    if not Path(CHROMIUM).exists():
        _unavailable(f"chromium not found at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("python playwright not installed")
    with sync_playwright() as pw:
        yield pw


@contextlib.contextmanager
def _page(playwright, base_url: str, locale: str, viewport: dict[str, int] | None = None):  # type: ignore[no-untyped-def]
    with tempfile.TemporaryDirectory(prefix="kaiwa-test-chromium-") as udd:
        ctx = playwright.chromium.launch_persistent_context(
            udd,
            executable_path=CHROMIUM,
            headless=False,  # --headless=new is in ARGS
            args=[*ARGS, f"--lang={locale}"],
            locale=locale,
            viewport=viewport or {"width": 1280, "height": 860},
        )
        try:
            page = ctx.new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
            page.goto(base_url)
            page.wait_for_function("() => window.kaiwa && window.kaiwa.state")
            yield page, errors
        finally:
            ctx.close()


def _unexpected(errors: list[str]) -> list[str]:
    # the only expected console error is the failed POST /token (http.server answers 501)
    return [e for e in errors if "501" not in e]


def test_dom_contract_and_token_error(playwright, base_url: str) -> None:  # type: ignore[no-untyped-def]
    with _page(playwright, base_url, "en-US") as (page, errors):
        for id_ in IDS:
            assert page.locator(f"#{id_}").count() == 1, id_
        assert page.get_attribute("#connection-state", "data-state") == "disconnected"
        assert page.get_attribute("#agent-state", "data-state") == "absent"
        assert page.locator("#tool-indicator").get_attribute("hidden") is not None
        assert page.locator("#case-card").get_attribute("hidden") is not None
        assert page.locator("#error").get_attribute("hidden") is not None
        assert page.evaluate("document.documentElement.lang") == "en"
        assert page.inner_text("#start") == "Start"
        api = page.evaluate(
            "() => ({state: typeof window.kaiwa.state, user: window.kaiwa.levels.user,"
            " agent: window.kaiwa.levels.agent, room: window.kaiwa.room ?? null})"
        )
        assert api == {"state": "object", "user": 0, "agent": 0, "room": None}

        page.click("#start")
        page.wait_for_selector("#error:not([hidden])", timeout=10_000)
        assert "501" in page.inner_text("#error")
        assert page.get_attribute("#connection-state", "data-state") == "disconnected"
        assert page.is_enabled("#start")
        assert _unexpected(errors) == []


def test_case_card_handlers_japanese(playwright, base_url: str) -> None:  # type: ignore[no-untyped-def]
    case = {
        "case": {
            "id": "DR-1",
            "customer_name": "山田",
            "status": "diagnosing",
            "quote_yen": 48000,
            "notes": [{"at": "2025-11-18T10:00:00+09:00", "author": "a", "text": "n"}],
            "history": [
                {
                    "at": "2025-11-18T09:00:00+09:00",
                    "actor": "x",
                    "action": "status",
                    "old": "",
                    "new": "received",
                },
                {
                    "at": "2025-11-19T09:00:00+09:00",
                    "actor": "y",
                    "action": "status",
                    "old": "received",
                    "new": "diagnosing",
                },
            ],
        }
    }
    with _page(playwright, base_url, "ja-JP", {"width": 390, "height": 844}) as (page, errors):
        assert page.evaluate("document.documentElement.lang") == "ja"
        assert page.inner_text("#start") == "開始"
        call = "([m, p]) => window.kaiwa.handlers[m](p)"
        assert page.evaluate(call, ["showCase", json.dumps(case)]) == "ok"
        assert page.get_attribute("#case-card", "data-case-id") == "DR-1"
        assert page.get_attribute("#case-status", "data-status") == "diagnosing"
        assert page.inner_text("#case-status") == "診断中"
        assert "48,000" in page.inner_text("#case-fields")
        history = page.locator("#case-history li").all_inner_texts()
        assert "診断中" in history[0] and "受付" in history[-1]  # newest first

        change = json.dumps({"case_id": "DR-1", "from": "diagnosing", "to": "quoted"})
        assert page.evaluate(call, ["statusChanged", change]) == "ok"
        assert page.get_attribute("#case-status", "data-status") == "quoted"
        assert page.inner_text("#case-status") == "見積済"

        other = json.dumps({"case_id": "DR-2", "from": "ready", "to": "returned"})
        assert page.evaluate(call, ["statusChanged", other]) == "ok"
        assert "返却済" in page.inner_text("#toast")
        assert page.get_attribute("#case-card", "data-case-id") == "DR-1"

        for method, payload in [
            ("showCase", "not json"),
            ("showCase", '{"case": 5}'),
            ("statusChanged", "{}"),
        ]:
            code = page.evaluate(
                "([m, p]) => { try { window.kaiwa.handlers[m](p); return null }"
                " catch (e) { return e.code } }",
                [method, payload],
            )
            assert code == 2400, (method, payload)

        assert page.evaluate(call, ["clear", "{}"]) == "ok"
        assert page.locator("#case-card").get_attribute("hidden") is not None
        assert errors == []


def test_widget_contract_without_a_server(playwright, base_url: str) -> None:  # type: ignore[no-untyped-def]
    """The <kaiwa-voice> element on the example page: its declaration, its bounded context,
    and a token error shown inside the widget (http.server answers POST with 501)."""
    if not (DIST / "widget.js").is_file() or not (DIST / "examples" / "orders.html").is_file():
        _unavailable("web/dist/widget.js not built (cd web && npm run build)")
    html = (DIST / "examples" / "orders.html").read_text()
    assert "'../widget.js?v=" in html and "https://" not in html
    with tempfile.TemporaryDirectory(prefix="kaiwa-test-chromium-") as udd:
        ctx = playwright.chromium.launch_persistent_context(
            udd, executable_path=CHROMIUM, headless=False, args=[*ARGS, "--lang=en-US"]
        )
        try:
            page = ctx.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
            page.goto(f"{base_url}examples/orders.html")
            page.wait_for_function("() => document.querySelector('kaiwa-voice').context")
            decl = page.evaluate("document.querySelector('kaiwa-voice').declaration()")
            assert decl["v"] == 1
            assert [a["name"] for a in decl["actions"]] == ["filter", "open_order", "close"]
            assert decl["actions"][2]["parameters"] == {"type": "object", "properties": {}}
            ctx_ = page.evaluate("document.querySelector('kaiwa-voice').screenContext()")
            assert ctx_["v"] == 1 and ctx_["view"] == "list" and len(ctx_["visible"]) == 10
            # a context over 4,096 bytes loses half of `visible` until it fits
            big = page.evaluate(
                """() => { const w = document.querySelector('kaiwa-voice');
                           const old = w.context;
                           w.context = () => ({view: 'list', visible: Array.from({length: 400},
                                               (_, i) => 'ORDER-' + String(i).padStart(6, '0'))});
                           const c = w.screenContext(); w.context = old; return c; }"""
            )
            assert 0 < len(big["visible"]) < 400
            assert len(json.dumps(big, separators=(",", ":"))) <= 4096
            # a bad action name is refused before anything is sent
            bad = page.evaluate(
                """() => { const w = document.querySelector('kaiwa-voice'); const old = w.actions;
                           w.actions = {'Bad-Name': {description: 'x', handler: () => 'ok'}};
                           try { w.declaration(); return null } catch (e) { return e.message }
                           finally { w.actions = old } }"""
            )
            assert bad and "must match" in bad
            # the token request fails: the widget shows it and stays usable
            page.click("kaiwa-voice [part=start]")
            page.wait_for_selector("kaiwa-voice [part=error]:not([hidden])", timeout=10_000)
            assert "501" in page.inner_text("kaiwa-voice [part=error]")
            assert page.get_attribute("kaiwa-voice", "data-connection") == "disconnected"
            assert page.is_enabled("kaiwa-voice [part=start]")
            assert errors == []
        finally:
            ctx.close()

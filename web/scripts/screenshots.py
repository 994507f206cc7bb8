"""Static check: serve web/dist with http.server (no token server), press Start, expect the
token error, exercise the case card through window.kaiwa.handlers, take screenshots.

    /work/main/.venv/bin/python web/scripts/screenshots.py [OUTDIR]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).parent))
from browser import DESKTOP, PHONE, browser_context, static_server

OUT = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "artifacts")

CASE = {
    "case": {
        "id": "DR-2025-0142",
        "customer_name": "山田 花子",
        "phone": "090-1234-5678",
        "email": "hanako@example.jp",
        "device_type": '2.5" HDD (USB)',
        "symptom": "Clicking noise, not recognised by the PC after a fall",
        "status": "diagnosing",
        "quote_yen": 48000,
        "notes": [
            {
                "at": "2025-11-18T10:02:00+09:00",
                "author": "reception",
                "text": "Customer needs the photos folder first.",
            },
            {
                "at": "2025-11-19T15:40:00+09:00",
                "author": "tech-sato",
                "text": "Head crash suspected; clean-room work needed.",
            },
        ],
        "return_date": "2025-11-28",
        "return_kind": "shipping",
        "created_at": "2025-11-18T09:55:00+09:00",
        "updated_at": "2025-11-19T15:41:00+09:00",
        "history": [
            {
                "at": "2025-11-18T09:55:00+09:00",
                "actor": "reception",
                "action": "status",
                "old": "",
                "new": "received",
            },
            {
                "at": "2025-11-19T15:41:00+09:00",
                "actor": "tech-sato",
                "action": "status",
                "old": "received",
                "new": "diagnosing",
            },
        ],
    }
}


def run() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    with sync_playwright() as pw, static_server() as url:
        for locale in ("en-US", "ja-JP"):
            for name, vp in (("desktop", DESKTOP), ("phone", PHONE)):
                for dark in (False, True) if name == "desktop" else (False,):
                    tag = f"{locale[:2]}-{name}{'-dark' if dark else ''}"
                    with browser_context(pw, locale=locale, viewport=vp, dark=dark) as ctx:
                        page = ctx.new_page()
                        errors: list[str] = []
                        page.on(
                            "console",
                            lambda m, e=errors: e.append(m.text) if m.type == "error" else None,
                        )
                        page.on("pageerror", lambda exc, e=errors: e.append(f"pageerror: {exc}"))
                        page.goto(url)
                        page.wait_for_selector("#start:not([disabled])")
                        page.screenshot(path=OUT / f"web-{tag}-idle.png", full_page=True)
                        page.click("#start")
                        page.wait_for_selector("#error:not([hidden])", timeout=10_000)
                        err = page.inner_text("#error")
                        conn = page.get_attribute("#connection-state", "data-state")
                        if "501" not in err or conn != "disconnected":
                            problems.append(
                                f"{tag}: token error not shown right: {err!r} conn={conn}"
                            )
                        page.evaluate("p => window.kaiwa.handlers.showCase(p)", json.dumps(CASE))
                        page.evaluate(
                            "p => window.kaiwa.handlers.statusChanged(p)",
                            json.dumps(
                                {"case_id": "DR-2025-0142", "from": "diagnosing", "to": "quoted"}
                            ),
                        )
                        bad = page.evaluate(
                            "() => { try { window.kaiwa.handlers.showCase('{\"case\": 5}');"
                            " return 'no error' } catch (e) { return e.code + ' ' + e.message } }"
                        )
                        if not bad.startswith("2400 "):
                            problems.append(f"{tag}: invalid payload not rejected: {bad}")
                        page.wait_for_timeout(1800)  # let the highlight animation finish
                        page.screenshot(
                            path=OUT / f"web-{tag}-token-error-case.png", full_page=True
                        )
                        unexpected = [
                            e
                            for e in errors
                            if "501" not in e and "Failed to load resource" not in e
                        ]
                        if unexpected:
                            problems.append(f"{tag}: console errors: {unexpected}")
                        print(tag, "error:", err.replace("\n", " ")[:120], "| console:", errors)
    for p in problems:
        print("PROBLEM:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(run())

"""Headless Chromium for browser tests: the system binary driven by Playwright.

Never downloads a browser: Debian's chromium (or `CHROMIUM`) is passed as
`executable_path`. The fake microphone plays a WAV file in a loop.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, cast

from tests.support.caller import load_wav
from tests.support.stack import ARTIFACTS

if TYPE_CHECKING:
    from playwright.async_api import BrowserContext, Playwright, ViewportSize

SCREENSHOTS = ARTIFACTS / "browser"
# Optional CJK glyphs for screenshots on machines without them (see web/README.md).
FONTCONFIG = Path("/tmp/kaiwa-fonts/fonts.conf")
# Chromium's fake capture device runs at 48 kHz; a WAV at that rate avoids its resampler.
FAKE_MIC_RATE = 48000
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require_chromium(*built: str) -> str:
    """Chromium's path for a browser test module, once playwright, chromium and the named
    files of the web build (under web/dist) are there. Missing: a skip, but under CI=true
    a failure (browser tests must run in CI)."""
    import importlib.util

    import pytest

    from tests.support.stack import ROOT

    def unavailable(reason: str) -> None:
        if in_ci():
            pytest.fail(f"{reason} (CI=true: browser tests must run)")
        pytest.skip(reason)

    if importlib.util.find_spec("playwright") is None:
        unavailable("python playwright is not installed")
    path = find_chromium()
    if path is None:
        unavailable("chromium not found (apt-get install chromium, or set CHROMIUM)")
    missing = [name for name in built if not (ROOT / "web" / "dist" / name).is_file()]
    if missing:
        unavailable(f"web/dist/{missing[0]} is not built (make web)")
    assert path is not None
    return path


def find_chromium() -> str | None:
    """`CHROMIUM`, else chromium on PATH, else /usr/bin/chromium; None if none exists."""
    for candidate in (
        os.environ.get("CHROMIUM"),
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
        "/usr/bin/chromium",
    ):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def fake_mic_wav(src: Path, dst: Path, rate: int = FAKE_MIC_RATE) -> Path:
    """`src` as a mono 16-bit WAV at `rate` (what --use-file-for-fake-audio-capture plays)."""
    pcm = load_wav(src, rate)
    with wave.open(str(dst), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return dst


def browser_env() -> dict[str, str]:
    env = dict(os.environ)
    if FONTCONFIG.is_file():
        env["FONTCONFIG_FILE"] = str(FONTCONFIG)
    return env


@contextlib.asynccontextmanager
async def chromium(
    pw: Playwright,
    executable: str,
    *,
    mic_wav: Path,
    locale: str = "en-US",
    viewport: ViewportSize | None = None,
) -> AsyncIterator[BrowserContext]:
    """A fresh headless Chromium profile (its own --user-data-dir) with a fake microphone."""
    env: dict[str, str | float | bool] = dict(browser_env())
    with tempfile.TemporaryDirectory(prefix="kaiwa-chromium-") as udd:
        ctx = await pw.chromium.launch_persistent_context(
            udd,  # Playwright passes it as --user-data-dir
            executable_path=executable,
            headless=False,  # --headless=new is in ARGS
            args=[*ARGS, f"--use-file-for-fake-audio-capture={mic_wav}", f"--lang={locale}"],
            env=env,
            locale=locale,
            viewport=viewport or cast("ViewportSize", {"width": 1280, "height": 860}),
            timeout=60_000,
        )
        try:
            yield ctx
        finally:
            await ctx.close()

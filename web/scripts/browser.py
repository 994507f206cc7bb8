"""Shared helpers for driving web/dist with Python Playwright + the system Chromium.

Never downloads a browser: it uses CHROMIUM (default /usr/bin/chromium) as executable_path.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

WEB = Path(__file__).resolve().parents[1]
DIST = WEB / "dist"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
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
    "--autoplay-policy=no-user-gesture-required",
]
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def static_server(directory: Path = DIST) -> Iterator[str]:
    """`python -m http.server` on a free loopback port (it answers POST with 501)."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "http.server",
            str(port),
            "--bind",
            "127.0.0.1",
            "--directory",
            str(directory),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        proc.wait(5)


def wait_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"port {port} not listening")


@contextlib.contextmanager
def browser_context(
    playwright, *, locale: str, viewport: dict, dark: bool = False, fonts: bool = True
):  # type: ignore[no-untyped-def]
    """A persistent context in a fresh user-data-dir with the fake media devices."""
    env = dict(os.environ)
    # optional: Japanese glyphs for screenshots on machines without CJK fonts
    fc = Path("/tmp/kaiwa-fonts/fonts.conf")
    if fonts and fc.exists():
        env["FONTCONFIG_FILE"] = str(fc)
    with tempfile.TemporaryDirectory(prefix="kaiwa-chromium-") as udd:
        ctx = playwright.chromium.launch_persistent_context(
            udd,
            executable_path=CHROMIUM,
            headless=False,  # --headless=new is in ARGS
            args=[*ARGS, f"--lang={locale}"],
            env=env,
            locale=locale,
            viewport=viewport,
            color_scheme="dark" if dark else "light",
            is_mobile=viewport["width"] < 600,
            has_touch=viewport["width"] < 600,
            device_scale_factor=2 if viewport["width"] < 600 else 1,
        )
        try:
            yield ctx
        finally:
            ctx.close()

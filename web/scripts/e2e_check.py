"""Drive web/dist against a real livekit-server with a scripted fake agent (no Gemini).

    /work/main/.venv/bin/python web/scripts/e2e_check.py [OUTDIR]

Starts: livekit-server (LIVEKIT_SERVER, default .bin/livekit-server) on free loopback ports; a
tiny HTTP server serving web/dist plus POST /token; a fake agent (livekit.rtc) that publishes a
tone, sets lk.agent.state / kaiwa.tools / kaiwa.notice, streams lk.transcription, answers
kaiwa.interrupt and calls the page's kaiwa.ui.* RPC methods. Then checks the page with Playwright.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import threading
import uuid
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from livekit import api, rtc
from playwright.async_api import Page, async_playwright, expect

sys.path.insert(0, str(Path(__file__).parent))
from browser import ARGS, CHROMIUM, DESKTOP, DIST, PHONE, free_port, wait_port
from screenshots import CASE

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "artifacts")
SERVER = os.environ.get("LIVEKIT_SERVER", str(ROOT / ".bin" / "livekit-server"))
KEY, SECRET = "devkey", "kaiwa-web-e2e-secret-0123456789abcdef"


def token(identity: str, room: str, *, agent: bool = False) -> str:
    t = (
        api.AccessToken(KEY, SECRET)
        .with_identity(identity)
        .with_name(identity)
        .with_grants(api.VideoGrants(room_join=True, room=room, can_update_own_metadata=agent))
    )
    if agent:
        t = t.with_kind("agent").with_attributes({"lk.agent.state": "initializing"})
    return t.to_jwt()


def start_livekit() -> tuple[subprocess.Popen[bytes], str]:
    port, rtc_tcp, rtc_udp = free_port(), free_port(), free_port()
    config = f"""
port: {port}
bind_addresses: ["127.0.0.1"]
rtc:
  tcp_port: {rtc_tcp}
  udp_port: {rtc_udp}
  use_external_ip: false
  node_ip: 127.0.0.1
  enable_loopback_candidate: true
keys:
  {KEY}: {SECRET}
logging:
  level: warn
"""
    proc = subprocess.Popen(
        [SERVER, "--config-body", config], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_port(port, 20)
    return proc, f"ws://127.0.0.1:{port}"


def start_web(ws_url: str, room: str) -> tuple[ThreadingHTTPServer, str]:
    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):  # type: ignore[no-untyped-def]
            super().__init__(*a, directory=str(DIST), **kw)

        def log_message(self, *a):  # type: ignore[no-untyped-def]
            pass

        def do_POST(self) -> None:
            if self.path != "/token":
                self.send_error(404)
                return
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            ident = f"user-{uuid.uuid4().hex[:6]}"
            body = json.dumps(
                {
                    "server_url": ws_url,
                    "participant_token": token(ident, room),
                    "room_name": room,
                    "participant_name": ident,
                    "participant_identity": ident,
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/"


class FakeAgent:
    def __init__(self) -> None:
        self.room = rtc.Room()
        self.chats: list[str] = []
        self.interrupts = 0
        self._tone: asyncio.Task[None] | None = None

    async def join(self, ws_url: str, room: str) -> None:
        self.room.register_text_stream_handler("lk.chat", self._on_chat)
        await self.room.connect(ws_url, token("agent-fake", room, agent=True))
        lp = self.room.local_participant

        @lp.register_rpc_method("kaiwa.interrupt")
        async def _interrupt(data: rtc.RpcInvocationData) -> str:
            self.interrupts += 1
            await self.state("listening")
            return "ok"

        source = rtc.AudioSource(48000, 1)
        track = rtc.LocalAudioTrack.create_audio_track("roomio_audio", source)
        await lp.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        )
        self._tone = asyncio.create_task(self._play(source))

    def _on_chat(self, reader: rtc.TextStreamReader, identity: str) -> None:
        async def read() -> None:
            self.chats.append(await reader.read_all())

        asyncio.get_running_loop().create_task(read())

    async def _play(self, source: rtc.AudioSource) -> None:
        n = 480  # 10 ms
        i = 0
        while True:
            frame = rtc.AudioFrame.create(48000, 1, n)
            data = frame.data  # int16 samples
            for k in range(n):
                data[k] = int(9000 * math.sin(2 * math.pi * 220 * (i + k) / 48000))
            i += n
            await source.capture_frame(frame)

    async def state(self, s: str) -> None:
        await self.room.local_participant.set_attributes({"lk.agent.state": s})

    async def attrs(self, **kv: str) -> None:
        await self.room.local_participant.set_attributes(kv)

    async def say(self, segment: str, words: list[str]) -> None:
        w = await self.room.local_participant.stream_text(
            topic="lk.transcription",
            attributes={"lk.segment_id": segment, "lk.transcription_final": "false"},
        )
        for word in words:
            await w.write(word)
            await asyncio.sleep(0.15)
        await w.aclose(attributes={"lk.transcription_final": "true"})

    async def user_said(self, user: str, segment: str, interim: list[str], final: str) -> None:
        for text in [*interim, final]:
            fin = "true" if text is final else "false"
            w = await self.room.local_participant.stream_text(
                topic="lk.transcription",
                sender_identity=user,
                attributes={"lk.segment_id": segment, "lk.transcription_final": fin},
            )
            await w.write(text)
            await w.aclose()
            await asyncio.sleep(0.1)

    async def rpc(self, user: str, method: str, payload: object) -> str:
        return await self.room.local_participant.perform_rpc(
            destination_identity=user,
            method=method,
            payload=json.dumps(payload) if not isinstance(payload, str) else payload,
        )

    async def leave(self) -> None:
        if self._tone:
            self._tone.cancel()
        await self.room.disconnect()


async def scenario(page: Page, agent: FakeAgent, tag: str, problems: list[str]) -> None:
    def check(ok: bool, what: str) -> None:
        print(("ok   " if ok else "FAIL ") + f"{tag}: {what}")
        if not ok:
            problems.append(f"{tag}: {what}")

    await page.click("#start")
    await expect(page.locator("#connection-state")).to_have_attribute(
        "data-state", "connected", timeout=15_000
    )
    await expect(page.locator("#agent-state")).to_have_attribute(
        "data-state", "initializing", timeout=10_000
    )
    user = await page.evaluate("window.kaiwa.state.identity")
    await agent.state("listening")
    await expect(page.locator("#agent-state")).to_have_attribute("data-state", "listening")
    # the fake microphone beeps about once a second (and noise suppression damps the beep):
    # take the peak over two seconds
    lv = await page.evaluate(
        """() => new Promise(res => {
             const peak = {user: 0, agent: 0}, t0 = performance.now(), lv = window.kaiwa.levels;
             const f = () => {
               for (const k of ['user', 'agent']) peak[k] = Math.max(peak[k], lv[k]);
               performance.now() - t0 < 2000 ? requestAnimationFrame(f) : res(peak);
             };
             f();
           })"""
    )
    check(lv["user"] > 0.001, f"user mic level moves (peak {lv['user']:.4f})")
    check(lv["agent"] > 0.01, f"agent voice level moves (peak {lv['agent']:.4f})")

    await agent.user_said(user, "u1", ["データ", "データ復旧の"], "データ復旧の状況を知りたいです")
    await agent.state("thinking")
    await agent.attrs(**{"kaiwa.tools": '["find_cases"]'})
    await expect(page.locator("#tool-indicator")).to_be_visible()
    check("find_cases" in await page.inner_text("#tool-indicator"), "tool indicator names the tool")
    await agent.attrs(
        **{
            "kaiwa.notice": json.dumps(
                {"level": "warning", "text": "The AI service is slow right now"}
            )
        }
    )
    await expect(page.locator("#notice")).to_be_visible()
    reply = await agent.rpc(user, "kaiwa.ui.show_case", CASE)
    check(reply == "ok", "show_case returns ok")
    await agent.state("speaking")
    await agent.say("a1", ["案件 DR-2025-0142 は", "現在", "診断中です。"])
    await agent.rpc(
        user,
        "kaiwa.ui.status_changed",
        {"case_id": "DR-2025-0142", "from": "diagnosing", "to": "quoted"},
    )
    await agent.rpc(
        user, "kaiwa.ui.status_changed", {"case_id": "DR-9", "from": "ready", "to": "returned"}
    )
    try:
        await agent.rpc(user, "kaiwa.ui.show_case", "not json")
        check(False, "invalid payload rejected")
    except rtc.RpcError as e:
        check(e.code == 2400, f"invalid payload rejected with RpcError {e.code}: {e.message}")
    await page.wait_for_timeout(600)

    card = page.locator("#case-card")
    check(await card.is_visible(), "case card visible")
    check(await card.get_attribute("data-case-id") == "DR-2025-0142", "card data-case-id")
    check(
        await page.get_attribute("#case-status", "data-status") == "quoted", "card status updated"
    )
    check(await page.locator("#toast").is_visible(), "toast for the other case")
    msgs = await page.eval_on_selector_all(
        "#transcript .msg",
        "els => els.map(e => [e.dataset.speaker, e.dataset.final,"
        " e.querySelector('.text').textContent])",
    )
    check(
        ["user", "true", "データ復旧の状況を知りたいです"] in msgs,
        f"user final transcript replaced interim: {msgs}",
    )
    check(
        ["agent", "true", "案件 DR-2025-0142 は現在診断中です。"] in msgs,
        "agent delta transcript assembled",
    )
    check(len([m for m in msgs if m[0] == "user"]) == 1, "one bubble per segment")

    await page.fill("#chat-input", "見積を承認します")
    await page.click("#chat-send")
    await page.wait_for_timeout(800)
    check(agent.chats == ["見積を承認します"], f"agent received lk.chat: {agent.chats}")
    check(
        await page.locator('#transcript .msg[data-source="chat"]').count() == 1,
        "typed message echoed",
    )

    await agent.state("speaking")
    await expect(page.locator("#interrupt")).to_be_enabled()
    await page.keyboard.press("Escape")
    await page.wait_for_timeout(800)
    check(agent.interrupts == 1, f"Escape sent kaiwa.interrupt ({agent.interrupts})")
    await agent.attrs(**{"kaiwa.tools": "[]"})
    await expect(page.locator("#tool-indicator")).to_be_hidden()
    await agent.state("speaking")
    await agent.attrs(**{"kaiwa.tools": '["update_case_status"]'})
    await page.wait_for_timeout(500)
    await page.screenshot(path=OUT / f"web-{tag}-live.png")

    await page.click("#camera")
    await expect(page.locator("#preview-camera")).to_be_visible(timeout=10_000)
    check(await page.get_attribute("#camera", "aria-pressed") == "true", "camera on")
    await page.click("#mute")
    await page.wait_for_timeout(400)
    check(await page.get_attribute("#mute", "aria-pressed") == "true", "mute pressed")
    check(await page.evaluate("window.kaiwa.levels.user") == 0, "muted level is 0")
    await page.screenshot(path=OUT / f"web-{tag}-live-camera.png")
    await page.click("#mute")
    await page.click("#camera")

    r = await agent.rpc(user, "kaiwa.ui.clear", {})
    await expect(card).to_be_hidden()
    check(r == "ok", "clear hides card")

    # agent leaves -> error with Reconnect
    await agent.leave()
    await expect(page.locator("#error")).to_be_visible(timeout=10_000)
    check(await page.locator("#reconnect").is_visible(), "agent left: reconnect offered")
    await page.click("#disconnect")
    await expect(page.locator("#connection-state")).to_have_attribute("data-state", "disconnected")


FONTS = Path("/tmp/kaiwa-fonts/fonts.conf")  # optional CJK fonts for screenshots (see README)


async def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240
    problems: list[str] = []
    fonts = FONTS.exists()  # noqa: ASYNC240
    lk, ws_url = start_livekit()
    try:
        async with async_playwright() as pw:
            for locale, vp, tag in (("ja-JP", DESKTOP, "ja-desktop"), ("en-US", PHONE, "en-phone")):
                room = f"kaiwa-web-{uuid.uuid4().hex[:8]}"
                httpd, url = start_web(ws_url, room)
                agent = FakeAgent()
                browser = await pw.chromium.launch(
                    executable_path=CHROMIUM,
                    headless=False,
                    args=[*ARGS, f"--lang={locale}"],
                    env={**os.environ, "FONTCONFIG_FILE": str(FONTS)} if fonts else None,
                )
                ctx = await browser.new_context(
                    locale=locale,
                    viewport=vp,
                    is_mobile=vp["width"] < 600,
                    has_touch=vp["width"] < 600,
                    device_scale_factor=2 if vp["width"] < 600 else 1,
                )
                page = await ctx.new_page()
                errors: list[str] = []
                page.on(
                    "console", lambda m, e=errors: e.append(m.text) if m.type == "error" else None
                )
                page.on("pageerror", lambda exc, e=errors: e.append(f"pageerror: {exc}"))
                await page.goto(url)
                await agent.join(ws_url, room)
                try:
                    await scenario(page, agent, tag, problems)
                except Exception as exc:  # keep going to collect the screenshot
                    problems.append(f"{tag}: {exc!r}")
                    await page.screenshot(path=OUT / f"web-{tag}-failure.png")
                if errors:
                    problems.append(f"{tag}: console errors {errors}")
                await browser.close()
                httpd.shutdown()
    finally:
        lk.terminate()
        lk.wait(10)
    for p in problems:
        print("PROBLEM:", p)
    print(f"{'FAILED' if problems else 'all good'}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))

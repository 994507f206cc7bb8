"""The floor for this stack: a minimal WebRTC ⇄ Gemini Live bridge, no agent framework.

    .venv/bin/python -m bench.floor_bridge run --steps 1,4 --step-seconds 30

Plain `livekit.rtc` plus the same google-genai Live client kaiwa's plugin uses, nothing
else: per room, subscribe to the caller's audio at 16 kHz in 20 ms frames and send each
frame as `realtime_input.audio` (base64 + JSON over the TLS WebSocket, as kaiwa does);
publish the model's 24 kHz audio as it arrives (the fake sends 40 ms chunks); typed chat
(`lk.chat`) goes as client content; `interrupted` clears the output queue. No tools, no
transcripts, no speech gate, no reconnects, no records.

`run` drives it with bench.capacity's own load generator and measurement (same callers,
same latency definitions, same CPU meter): the orchestrator hosts the Gemini fake and
starts livekit-server and the bridge (`serve`, a separate process whose CPU is the
"worker" figure). The bridge has no agent registration; it polls livekit-server's room
list and joins every new caller room. Writes <out>/floor.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from google import genai
from google.genai import types
from livekit import api, rtc

log = logging.getLogger("bench.floor_bridge")
IN_RATE, OUT_RATE, FRAME_MS = 16000, 24000, 20
GREETING = "Greet the caller."


# --- the bridge ---------------------------------------------------------------------------


class Call:
    def __init__(self, client: genai.Client, model: str, lk_url: str, token: str) -> None:
        self.client, self.model, self.lk_url, self.token = client, model, lk_url, token
        self.room = rtc.Room()
        self.source = rtc.AudioSource(OUT_RATE, 1, queue_size_ms=200)
        self.done = asyncio.Event()
        self.tasks: set[asyncio.Task[Any]] = set()

    def _spawn(self, coro: Any) -> None:
        t = asyncio.create_task(coro)
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    async def run(self) -> None:
        config = types.LiveConnectConfig(
            response_modalities=[types.Modality.AUDIO],
            system_instruction=types.Content(parts=[types.Part(text="You are a floor bridge.")]),
            input_audio_transcription=types.AudioTranscriptionConfig(),
            output_audio_transcription=types.AudioTranscriptionConfig(),
        )
        async with self.client.aio.live.connect(model=self.model, config=config) as session:
            self.session = session
            self.room.on("track_subscribed", self._on_track)
            self.room.on("participant_disconnected", lambda *_: self.done.set())
            self.room.register_text_stream_handler("lk.chat", self._on_chat)
            await self.room.connect(self.lk_url, self.token)
            track = rtc.LocalAudioTrack.create_audio_track("agent", self.source)
            await self.room.local_participant.publish_track(
                track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
            )
            self._spawn(self._receive())
            await session.send_client_content(
                turns=[
                    types.Content(role="model", parts=[types.Part(text=GREETING)]),
                    types.Content(role="user", parts=[types.Part(text=".")]),
                ],
                turn_complete=True,
            )
            await self.done.wait()
            for t in list(self.tasks):
                t.cancel()
        await self.room.disconnect()

    def _on_track(self, track: rtc.Track, *_: Any) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO:
            self._spawn(self._send_audio(track))

    async def _send_audio(self, track: rtc.Track) -> None:
        stream = rtc.AudioStream(track, sample_rate=IN_RATE, num_channels=1, frame_size_ms=FRAME_MS)
        mime = f"audio/pcm;rate={IN_RATE}"
        async for ev in stream:
            await self.session.send_realtime_input(
                audio=types.Blob(data=ev.frame.data.tobytes(), mime_type=mime)
            )

    async def _receive(self) -> None:
        while True:
            async for msg in self.session.receive():
                sc = msg.server_content
                if sc is None:
                    continue
                if sc.interrupted:
                    self.source.clear_queue()
                if sc.model_turn is not None:
                    for part in sc.model_turn.parts or []:
                        data = part.inline_data.data if part.inline_data else None
                        if data:
                            frame = rtc.AudioFrame(data, OUT_RATE, 1, len(data) // 2)
                            await self.source.capture_frame(frame)

    def _on_chat(self, reader: rtc.TextStreamReader, _identity: str) -> None:
        async def read() -> None:
            text = await reader.read_all()
            await self.session.send_client_content(
                turns=types.Content(role="user", parts=[types.Part(text=text)]),
                turn_complete=True,
            )

        self._spawn(read())


async def serve(prefix: str) -> None:
    lk_url = os.environ["LIVEKIT_URL"]
    key, secret = os.environ["LIVEKIT_API_KEY"], os.environ["LIVEKIT_API_SECRET"]
    model = os.environ.get("KAIWA_MODEL", "gemini-3.8-live")
    client = genai.Client(
        api_key=os.environ.get("GOOGLE_API_KEY", "fake"),
        http_options=types.HttpOptions(api_version="v1beta"),
    )
    lkapi = api.LiveKitAPI(lk_url.replace("ws", "http", 1), key, secret)
    seen: set[str] = set()
    calls: set[asyncio.Task[None]] = set()
    print("bridge ready", flush=True)
    while True:
        rooms = await lkapi.room.list_rooms(api.ListRoomsRequest())
        for r in rooms.rooms:
            if r.name.startswith(prefix) and r.name not in seen and r.num_participants > 0:
                seen.add(r.name)
                token = (
                    api.AccessToken(key, secret)
                    .with_identity(f"floor-{r.name}")
                    .with_kind("agent")
                    .with_grants(api.VideoGrants(room_join=True, room=r.name, agent=True))
                    .to_jwt()
                )
                call = Call(client, model, lk_url, token)
                t = asyncio.create_task(call.run())
                calls.add(t)
                t.add_done_callback(calls.discard)
                t.add_done_callback(_log_failure)
        await asyncio.sleep(0.2)  # pacing: room discovery poll


def _log_failure(t: asyncio.Task[None]) -> None:
    if not t.cancelled() and t.exception() is not None:
        print(f"call failed: {t.exception()!r}", file=sys.stderr, flush=True)


# --- the driver (bench.capacity's callers and measurement) -----------------------------------


async def orchestrate(args: argparse.Namespace) -> dict[str, Any]:
    from bench.capacity import run_step, tree_memory_mb
    from bench.common import Stack, provenance
    from tests.fakes.gemini_live import GeminiLiveFake
    from tests.support.stack import ROOT, ManagedProcess, worker_env

    agent = "kaiwa-floor"
    steps: list[dict[str, Any]] = []
    async with GeminiLiveFake() as fake:
        fake.script.greeting_seconds = 1.0
        fake.script.reply_seconds = 1.5
        workdir = Path(tempfile.mkdtemp(prefix="kaiwa-floor-"))
        stack = Stack(workdir)
        try:
            lk = await stack.start_livekit()
            env = worker_env(lk, fake.env(), PYTHONPATH=str(ROOT))
            bridge = ManagedProcess(
                "floor-bridge",
                [sys.executable, "-m", "bench.floor_bridge", "serve", "--prefix", "cap-"],
                env=env,
                cwd=ROOT,
            )
            await bridge.start()
            await bridge.wait_for_line("bridge ready", timeout=30)
            stack.workers[agent] = bridge  # type: ignore[assignment]
            await asyncio.sleep(3)  # pacing: as bench.capacity lets the worker settle
            assert bridge.proc is not None
            idle_mem = tree_memory_mb(bridge.proc.pid)
            print(f"  floor bridge (idle worker {idle_mem})", file=sys.stderr, flush=True)
            for n in args.steps:
                steps.append(
                    await run_step(fake, stack, agent, n, args.step_seconds, workdir, idle_mem)
                )
            stack.workers.pop(agent, None)
            await bridge.stop()
        finally:
            await stack.stop()
    return {
        **provenance(" ".join(["python -m bench.floor_bridge", *sys.argv[1:]])),
        "step_seconds": args.step_seconds,
        "idle_worker_memory": idle_mem,
        "steps": steps,
    }


def markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    out = [
        "| N | input p50/p95/p99 | output p50/p95/p99 | greeting p50 | turns | failures "
        "| bridge cores (per call) | calls per core | livekit-server | load generator "
        "| fake+orchestrator | machine CPU | bridge PSS MB (per call) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in r["steps"]:
        c = s["cpu_cores"]
        per = s["worker_cpu_per_session"]
        out.append(
            f"| {s['n']} | {s['input']['p50']}/{s['input']['p95']}/{s['input']['p99']} "
            f"| {s['output']['p50']}/{s['output']['p95']}/{s['output']['p99']} "
            f"| {s['greeting']['p50']} | {s['turns']} | {len(s['failures'])} "
            f"| {c.get('worker', 0):.3f} ({per:.3f}) | {1 / per if per else 0:.1f} "
            f"| {c.get('livekit_server', 0):.2f} | {c.get('loadgen', 0):.2f} "
            f"| {c.get('orchestrator_fake', 0):.2f} | {c.get('machine_fraction', 0):.0%} "
            f"| {s['worker_memory'].get('pss_mb')} ({s['worker_pss_per_session_mb']}) |"
        )
    head = [
        f"- command: `{r['command']}`",
        f"- date: {r['date']}, commit `{r['commit']}`, load average at the end {m['load_average']}",
        "",
    ]
    return "\n".join(head + out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sv = sub.add_parser("serve", help="the bridge itself (env: LIVEKIT_*, GOOGLE_*)")
    sv.add_argument("--prefix", default="cap-")
    rn = sub.add_parser("run", help="drive the bridge with bench.capacity's callers")
    rn.add_argument("--steps", default="1,4")
    rn.add_argument("--step-seconds", type=float, default=30.0)
    rn.add_argument("--n", type=int, default=None, help="one step of N (bench.cpu_profile)")
    rn.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    if args.cmd == "serve":
        asyncio.run(serve(args.prefix))
        return
    from bench.common import RESULTS, write_json

    args.steps = [args.n] if args.n else [int(x) for x in args.steps.split(",")]
    out: Path = args.out or RESULTS
    r = asyncio.run(orchestrate(args))
    write_json(out / "floor.json", r)
    md = markdown(r)
    (out / "floor.run.md").write_text(md)
    print(md)
    with contextlib.suppress(Exception):
        print(json.dumps([s["failures"] for s in r["steps"]]), file=sys.stderr)
    _ = time


if __name__ == "__main__":
    main()

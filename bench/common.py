"""Shared pieces of kaiwa's benchmarks: the stack, a measuring participant, statistics.

Everything runs on this machine's loopback: a real livekit-server, the Gemini Live fake
(tests/fakes/gemini_live, answering at zero think time), kaiwa's worker as a subprocess and
real livekit.rtc participants. All timestamps are `time.monotonic()` (CLOCK_MONOTONIC is
system-wide on Linux, so times taken in different processes compare directly).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from livekit import api, rtc

from tests.support.caller import Caller, ReceivedFrame
from tests.support.stack import (
    API_KEY,
    API_SECRET,
    ROOT,
    LiveKitServer,
    Worker,
    find_livekit_server,
    worker_env,
)

RESULTS = ROOT / "bench" / "results"
MIC_RATE = 48000
MIC_FRAME_MS = 10
MIC_SAMPLES = MIC_RATE * MIC_FRAME_MS // 1000
MIC_QUEUE_MS = 20  # the participant's own AudioSource queue (kept small; excluded, see below)
ONSET_PEAK = 3000  # |sample| above which audio counts as "the onset has arrived"
TONE_AMPLITUDE = 12000

# The two configurations compared side by side (environment of the worker).
# "Stock" = livekit-agents and livekit-plugins-google as shipped: the plugin's own
# RealtimeModel (bench/bench_worker.py with BENCH_REALTIME=plugin; BENCH_* are read by
# bench code only), the framework's default room input (50 ms frames at 24 kHz), no prewarm; kaiwa's
# settings, instructions and tools otherwise.
STOCK = {
    "BENCH_REALTIME": "plugin",
    "KAIWA_AUDIO_FRAME_MS": "50",
    "KAIWA_AUDIO_INPUT_RATE": "24000",
    "KAIWA_PREWARM": "false",
}
TUNED: dict[str, str] = {}  # kaiwa's defaults (agent/settings.py)


def tone(seconds: float, rate: int = MIC_RATE, hz: float = 300.0) -> np.ndarray:
    """A sharp-onset tone: full amplitude from sample 0, so onset detection is exact."""
    t = np.arange(round(seconds * rate)) / rate
    # start at the sine's peak so the very first sample is loud
    return (TONE_AMPLITUDE * np.cos(2 * np.pi * hz * t)).astype(np.int16)


def peak(pcm: bytes | np.ndarray) -> int:
    a = np.frombuffer(pcm, dtype=np.int16) if isinstance(pcm, bytes) else pcm
    return int(np.abs(a.astype(np.int32)).max()) if len(a) else 0


def mint_token(room: str, identity: str, agent_name: str) -> str:
    """A participant token whose room configuration dispatches `agent_name` (explicit
    dispatch, as kaiwa's token server does)."""
    return (
        api.AccessToken(API_KEY, API_SECRET)
        .with_identity(identity)
        .with_grants(api.VideoGrants(room_join=True, room=room))
        .with_room_config(
            api.RoomConfiguration(agents=[api.RoomAgentDispatch(agent_name=agent_name)])
        )
        .to_jwt()
    )


@dataclass
class PeakFrame(ReceivedFrame):
    peak: int = 0


@dataclass
class BenchCaller(Caller):
    """tests.support.caller.Caller with a measuring microphone and receiver.

    Microphone: 10 ms frames into an AudioSource with a 20 ms queue. For each clip the
    recorded onset is the moment its first frame enters WebRTC: the time of the capture
    call plus what the source still had queued ahead of it. The participant's own capture
    buffering is therefore excluded from "input latency", and WebRTC's encoder, network,
    livekit-server, the agent's decoder/jitter buffer, room input framing, the plugin's
    chunking and the WebSocket to Gemini are included.

    Receiver: 48 kHz, 10 ms frames; each frame's peak is kept with its arrival time, so
    an onset is seen in the first delivered frame that contains it (10 ms granularity).
    """

    url: str = ""
    token: str = ""
    clip_onsets: list[float] = field(default_factory=list)
    join_started: float = 0.0

    async def join(self, body: dict[str, Any] | None = None, *, timeout: float = 15.0) -> None:
        self.join_started = time.monotonic()
        self.room.on("track_subscribed", self._on_track_subscribed)
        self.room.on("participant_attributes_changed", lambda *_: self._notify())
        self.room.on("participant_connected", lambda *_: self._notify())
        await asyncio.wait_for(self.room.connect(self.url, self.token), timeout)
        self.identity = self.room.local_participant.identity
        await self._start_microphone()

    async def _start_microphone(self) -> None:
        self._source = rtc.AudioSource(MIC_RATE, 1, queue_size_ms=MIC_QUEUE_MS)
        track = rtc.LocalAudioTrack.create_audio_track("mic", self._source)
        opts = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        await self.room.local_participant.publish_track(track, opts)
        self._tasks.append(asyncio.create_task(self._mic_loop()))

    async def _mic_loop(self) -> None:
        frame = rtc.AudioFrame.create(MIC_RATE, 1, MIC_SAMPLES)
        buf = np.frombuffer(frame.data, dtype=np.int16)
        pos = 0
        while True:
            if self._queue:
                clip = self._queue[0]
                chunk = clip[pos : pos + MIC_SAMPLES]
                if pos == 0:
                    self.clip_onsets.append(time.monotonic() + self._source.queued_duration)
                pos += MIC_SAMPLES
                if pos >= len(clip):
                    self._queue.pop(0)
                    pos = 0
                buf[:] = 0
                buf[: len(chunk)] = chunk
            else:
                buf[:] = 0
            await self._source.capture_frame(frame)

    async def _receive_audio(self, track: rtc.Track) -> None:
        stream = rtc.AudioStream(
            track, sample_rate=MIC_RATE, num_channels=1, frame_size_ms=MIC_FRAME_MS
        )
        async for ev in stream:
            pcm = np.frombuffer(ev.frame.data, dtype=np.int16)
            p = peak(pcm)
            f = pcm.astype(np.float32)
            rms = float(np.sqrt(np.mean(f * f))) if len(f) else 0.0
            self.audio_frames.append(PeakFrame(time.monotonic(), rms, len(pcm), p))
            if p > ONSET_PEAK:
                self._notify()

    def first_loud_at(self, since: float) -> float | None:
        for f in frames_since(self.audio_frames, since):
            if isinstance(f, PeakFrame) and f.peak > ONSET_PEAK:
                return f.at
        return None

    def last_loud_at(self, since: float, until: float) -> float | None:
        last = None
        for f in frames_since(self.audio_frames, since):
            if f.at > until:
                break
            if isinstance(f, PeakFrame) and f.peak > ONSET_PEAK:
                last = f.at
        return last

    def loud_runs(self, gap: float = 0.15) -> list[float]:
        """Start times of runs of loud frames separated by at least `gap` of quiet."""
        starts: list[float] = []
        last: float | None = None
        for f in self.audio_frames:
            if isinstance(f, PeakFrame) and f.peak > ONSET_PEAK:
                if last is None or f.at - last > gap:
                    starts.append(f.at)
                last = f.at
        return starts

    def quiet_for(self, seconds: float) -> bool:
        """No loud agent frame for the last `seconds`."""
        now = time.monotonic()
        for f in reversed(self.audio_frames):
            if now - f.at > seconds:
                return True
            if isinstance(f, PeakFrame) and f.peak > ONSET_PEAK:
                return False
        return now - self.join_started > seconds

    async def wait_quiet(self, seconds: float, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.quiet_for(seconds):
            if time.monotonic() > deadline:
                raise TimeoutError(f"agent audio did not stop for {seconds}s")
            await asyncio.sleep(0.02)  # polling the receiver's record, bounded above

    async def wait_loud(self, since: float, timeout: float) -> float:
        await self.wait_until(
            lambda: self.first_loud_at(since) is not None, timeout, "agent audio onset"
        )
        at = self.first_loud_at(since)
        assert at is not None
        return at


def frames_since(frames: list[ReceivedFrame], since: float) -> Iterable[ReceivedFrame]:
    """Frames with `at >= since`, in order (binary search on the arrival-ordered list)."""
    lo, hi = 0, len(frames)
    while lo < hi:
        mid = (lo + hi) // 2
        if frames[mid].at < since:
            lo = mid + 1
        else:
            hi = mid
    return frames[lo:]


def new_caller(lk_url: str, agent_name: str, prefix: str = "bench") -> BenchCaller:
    room = f"{prefix}-{uuid.uuid4().hex[:10]}"
    identity = f"caller-{uuid.uuid4().hex[:6]}"
    c = BenchCaller(token_url="", url=lk_url, token=mint_token(room, identity, agent_name))
    c.room_name = room
    return c


# --- statistics ---------------------------------------------------------------------------


def summary(values_s: list[float]) -> dict[str, float | int | None]:
    """p50/p95/p99/max in milliseconds (nearest-rank percentiles)."""
    if not values_s:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None, "mean": None}
    v = sorted(x * 1000 for x in values_s)

    def pct(p: float) -> float:
        k = max(0, min(len(v) - 1, int(np.ceil(p / 100 * len(v))) - 1))
        return round(v[k], 1)

    return {
        "n": len(v),
        "p50": pct(50),
        "p95": pct(95),
        "p99": pct(99),
        "max": round(v[-1], 1),
        "mean": round(float(np.mean(v)), 1),
    }


# --- stack ---------------------------------------------------------------------------------


@dataclass
class Stack:
    workdir: Path
    livekit: LiveKitServer | None = None
    workers: dict[str, Worker] = field(default_factory=dict)

    async def start_livekit(self) -> LiveKitServer:
        binary = find_livekit_server()
        if binary is None:
            raise SystemExit("no livekit-server (run `make livekit-server`)")
        self.livekit = LiveKitServer(binary)
        await self.livekit.start(self.workdir)
        return self.livekit

    async def start_worker(
        self, agent_name: str, gemini_env: dict[str, str], extra: dict[str, str]
    ) -> Worker:
        assert self.livekit is not None
        defaults = {
            "KAIWA_AGENT_NAME": agent_name,
            "KAIWA_INSTRUCTIONS": "You are kaiwa under benchmark.",
            "KAIWA_VIDEO_INPUT": "false",
            "KAIWA_LOAD_THRESHOLD": "inf",
            # the benchmark leaves turns unanswered on purpose; no stall reconnects
            "KAIWA_STALL_TIMEOUT_S": "3600",
            "KAIWA_DESK_DB": str(self.workdir / "desk.sqlite3"),
        }
        env = worker_env(self.livekit, gemini_env, **{**defaults, **extra})
        w = Worker(env, self.workdir, name=f"bench-worker-{agent_name}")
        # bench-only switches (never read by product code): the bench entry swaps pieces
        if any(k.startswith("BENCH_") for k in env):
            w.argv = [sys.executable, str(ROOT / "bench" / "bench_worker.py"), "start"]
        await w.start_and_register()
        self.workers[agent_name] = w
        return w

    async def stop_worker(self, agent_name: str) -> None:
        w = self.workers.pop(agent_name, None)
        if w is not None:
            await w.stop()

    async def stop(self) -> None:
        for name in list(self.workers):
            await self.stop_worker(name)
        if self.livekit is not None:
            await self.livekit.stop()


def proc_tree(pid: int) -> list[psutil.Process]:
    with contextlib.suppress(psutil.Error):
        p = psutil.Process(pid)
        return [p, *p.children(recursive=True)]
    return []


def tree_cpu_seconds(pid: int) -> float:
    """User+system CPU of a process and its live children (children that already exited
    are counted through their parent's children_* times)."""
    total = 0.0
    for p in proc_tree(pid):
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def tree_rss_mb(pid: int) -> float:
    total = 0
    for p in proc_tree(pid):
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total / 2**20


# --- provenance -----------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def provenance(command: str) -> dict[str, Any]:
    def git(*args: str) -> str:
        out = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False, timeout=10
        )
        return out.stdout.strip()

    versions = {}
    for pkg in ("livekit-agents", "livekit-plugins-google", "livekit", "google-genai"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions[pkg] = version(pkg)
    lk = find_livekit_server()
    if lk:
        out = subprocess.run([lk, "--version"], capture_output=True, text=True, check=False)
        versions["livekit-server"] = out.stdout.strip().split()[-1] if out.stdout else "?"
    return {
        "command": command,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": git("rev-parse", "--short", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "machine": machine(),
        "versions": versions,
    }


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def fmt(v: float | int | None) -> str:
    return "–" if v is None else f"{v:.0f}" if isinstance(v, float) and v >= 100 else f"{v}"

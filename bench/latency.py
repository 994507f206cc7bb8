"""kaiwa's added latency, stock vs tuned, over a real livekit-server on loopback.

    .venv/bin/python -m bench.latency                 # 50 reps per path, writes bench/results/
    .venv/bin/python -m bench.latency --reps 3 --greetings 2 --out /tmp/x   # quick look

The Gemini Live fake answers at zero think time, so every number below is kaiwa + LiveKit
(+ the loopback network and the participant's WebRTC stack). One worker per configuration
runs during the same run; repetitions alternate between the configurations so drifting
background load hits both alike. What each path measures (all on the monotonic clock):

  input     the participant's first onset frame enters WebRTC → the fake receives the
            Gemini audio chunk holding that onset (includes the room's input framing and
            the plugin's re-chunking: a chunk is sent when it is full)
  output    the fake sends the first audio chunk of a turn → the participant receives the
            first 10 ms frame holding it
  barge_in  the fake sends `interrupted` (mid-turn, audio paced in real time in 40 ms
            chunks) → the last loud agent frame at the participant. Up to 40 ms of it is
            the chunk the fake had already sent, which plays out whatever kaiwa does.
  tool      the fake's toolCall sent → its toolResponse received, minus the tool's own
            run time (measured in-process on the same function)
  greeting  the participant starts joining a new room → first agent audio received (new
            room, agent dispatch, job start, Gemini connect, greeting request, reply)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import re
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import (
    ONSET_PEAK,
    RESULTS,
    STOCK,
    TUNED,
    BenchCaller,
    Stack,
    fmt,
    new_caller,
    peak,
    provenance,
    summary,
    tone,
    tree_cpu_seconds,
    write_json,
)
from tests.fakes.gemini_live import FakeConversation, GeminiLiveFake

log = logging.getLogger("bench.latency")
PATHS = ("input", "output", "barge_in", "tool", "greeting")
FAKE_RATE = 24000
# livekit-agents' loop monitor: "event loop blocked for 346ms at ..."
BLOCKED = re.compile(r"event loop blocked for (\d+)ms")


@dataclass
class Variant:
    label: str
    env: dict[str, str]
    agent_name: str = ""
    lk_url: str = ""
    caller: BenchCaller | None = None
    conv: FakeConversation | None = None
    samples: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PATHS})
    greeting_parts: list[dict[str, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    loop_blocks_ms: list[int] = field(default_factory=list)
    worker_pid: int = 0
    worker_cores: float | None = None


def parse_variant(text: str) -> Variant:
    """`label` for a preset (stock, tuned) or `label:KEY=VAL,KEY=VAL` on top of tuned."""
    label, _, rest = text.partition(":")
    presets = {"stock": STOCK, "tuned": TUNED}
    env = dict(presets.get(label, TUNED))
    for item in filter(None, rest.split(",")):
        k, _, v = item.partition("=")
        env[k.strip()] = v.strip()
    return Variant(label, env)


# --- tool under test -------------------------------------------------------------------------


def pick_tool() -> tuple[str, dict[str, Any], float]:
    """A fast tool kaiwa offers, and its own run time in seconds: the median of 200 calls
    of the function body itself (without kaiwa's wrapper or the framework around it)."""
    name = "get_current_time"
    try:
        from types import SimpleNamespace

        from agent.call import CallState, open_services
        from agent.settings import Settings
        from agent.tools import clock

        ctx = SimpleNamespace(userdata=CallState(services=open_services(Settings(_env_file=None))))
        body = clock.get_current_time.__kaiwa_fn__  # type: ignore[attr-defined]
    except Exception as e:  # the tool or its module is not there (yet)
        log.warning("could not time %s in-process (%s); assuming 0", name, e)
        return name, {}, 0.0

    async def measure() -> float:
        times = []
        for _ in range(200):
            t = time.perf_counter()
            await body(ctx=ctx)
            times.append(time.perf_counter() - t)
        return sorted(times)[len(times) // 2]

    return name, {}, asyncio.run(measure())


# --- one repetition of each path -----------------------------------------------------------


async def rep_input(v: Variant) -> float:
    c, conv = v.caller, v.conv
    assert c is not None and conv is not None
    await c.wait_quiet(0.2, timeout=10)
    start = len(conv.audio)
    n_onsets = len(c.clip_onsets)
    c.say(tone(0.25))
    await c.wait_until(lambda: len(c.clip_onsets) > n_onsets, 5, "the mic onset")
    onset = c.clip_onsets[-1]

    def arrived() -> float | None:
        for ch in conv.audio[start:]:
            if ch.at >= onset and peak(ch.pcm) > ONSET_PEAK:
                return ch.at
        return None

    at = await conv.fake.wait_until(arrived, timeout=5, what="the onset at the fake")

    def ended() -> bool | None:
        tail = conv.audio[-3:]
        return (tail and tail[-1].at > at + 0.25 and all(peak(x.pcm) < 500 for x in tail)) or None

    await conv.fake.wait_until(ended, timeout=5, what="the tone to end at the fake")
    return at - onset


async def rep_output(v: Variant) -> float:
    c, conv = v.caller, v.conv
    assert c is not None and conv is not None
    await c.wait_quiet(0.2, timeout=10)
    since = time.monotonic()
    res = await conv.speak(text="ok", pcm=tone(0.25, FAKE_RATE, 250).tobytes(), barge_in=False)
    assert res.first_audio_sent_at is not None
    heard = await c.wait_loud(since, timeout=5)
    return heard - res.first_audio_sent_at


async def rep_barge_in(v: Variant) -> float:
    c, conv = v.caller, v.conv
    assert c is not None and conv is not None
    await c.wait_quiet(0.2, timeout=10)
    since = time.monotonic()
    pcm = tone(1.5, FAKE_RATE, 250).tobytes()
    task = asyncio.create_task(conv.speak(text="a long answer", pcm=pcm, barge_in=False))
    try:
        first = await c.wait_loud(since, timeout=5)
        await asyncio.sleep(0.15)  # pacing: let the answer flow for a moment
        asked = time.monotonic()
        await conv.send_interrupted(timeout=5)
        sent = next(
            m.at
            for m in conv.messages
            if m.direction == "out"
            and m.at >= asked
            and isinstance(m.data, dict)
            and m.data.get("serverContent", {}).get("interrupted")
        )
    finally:
        await asyncio.wait_for(task, 10)
    # the observation window: anything still arriving 0.8 s later is counted too
    await asyncio.sleep(0.8)
    last = c.last_loud_at(first, sent + 0.8)
    assert last is not None
    return last - sent


async def rep_tool(v: Variant, name: str, args: dict[str, Any], own: float) -> float:
    conv = v.conv
    assert conv is not None
    call_id = await conv.send_tool_call(name, args, timeout=5)
    resp = await conv.wait_for_tool_response(call_id, timeout=10)
    rec = conv.tool_calls[call_id]
    if "error" in resp and "output" not in resp:
        v.errors.append(f"tool {name}: {json.dumps(resp)[:200]}")
    assert rec.response_at is not None
    # the model answers after a tool, as Gemini does (kaiwa expects a reply to follow)
    await conv.speak(text="done", pcm=tone(0.1, FAKE_RATE, 250).tobytes(), barge_in=False)
    return rec.response_at - rec.sent_at - own


async def rep_greeting(v: Variant, fake: GeminiLiveFake, lk_url: str) -> float:
    c = new_caller(lk_url, v.agent_name, prefix="greet")
    conv: FakeConversation | None = None
    try:
        await c.join()
        conv = await fake.next_conversation(timeout=30)
        heard = await c.wait_loud(c.join_started, timeout=30)
        conn = conv.connections[0]
        req = next((x.at for x in conv.client_contents if x.is_greeting_request), None)
        sp = conv.speeches[0].first_audio_sent_at if conv.speeches else None
        v.greeting_parts.append(
            {
                "gemini_connect": conn.opened_at - c.join_started,
                "setup_complete": (conn.setup_complete_at or conn.opened_at) - c.join_started,
                "greeting_request": (req or heard) - c.join_started,
                "first_audio_sent": (sp or heard) - c.join_started,
                "heard": heard - c.join_started,
            }
        )
        return heard - c.join_started
    finally:
        await c.leave()
        if conv is not None:
            with contextlib.suppress(TimeoutError):
                await conv.wait_for_close(timeout=15)


# --- the run -------------------------------------------------------------------------------


async def open_session(v: Variant, fake: GeminiLiveFake, lk_url: str) -> None:
    c = new_caller(lk_url, v.agent_name, prefix="lat")
    await c.join()
    conv = await fake.next_conversation(timeout=30)
    # the auto greeting plays; then the benchmark drives the "model" by hand
    await c.wait_loud(c.join_started, timeout=30)
    conv.auto = False
    await c.wait_quiet(0.3, timeout=15)
    v.caller, v.conv = c, conv


async def timed(v: Variant, path: str, fn: Callable[[], Awaitable[float]]) -> None:
    try:
        v.samples[path].append(await asyncio.wait_for(fn(), 30))
    except Exception as e:  # a failed repetition is reported, not fatal
        v.errors.append(f"{path}: {type(e).__name__}: {e}"[:300])
        log.warning("%s %s failed: %s", v.label, path, e)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    variants = [parse_variant(s) for s in args.variant] or [
        parse_variant("stock"),
        parse_variant("tuned"),
    ]
    tool_name, tool_args, tool_own = args.tool
    # One livekit-server per configuration: two workers with different agent names on one
    # v1.13.5 server lost job requests ("no servers available") in our runs.
    stacks: list[Stack] = []
    async with GeminiLiveFake() as fake:
        fake.script.greeting_seconds = 0.5
        try:
            for i, v in enumerate(variants):
                st = Stack(Path(tempfile.mkdtemp(prefix="kaiwa-bench-")))
                stacks.append(st)
                v.lk_url = (await st.start_livekit()).url
                v.agent_name = f"kaiwa-bench-{i}-{v.label}"
                w = await st.start_worker(v.agent_name, fake.env(), {**args.env, **v.env})
                assert w.proc is not None
                v.worker_pid = w.proc.pid
            for v in variants:
                await open_session(v, fake, v.lk_url)
            cpu0 = {v.label: tree_cpu_seconds(v.worker_pid) for v in variants}
            t0 = time.monotonic()
            for r in range(args.reps):
                for v in variants:
                    await timed(v, "input", lambda v=v: rep_input(v))  # type: ignore[misc]
                    await timed(v, "output", lambda v=v: rep_output(v))  # type: ignore[misc]
                    await timed(v, "barge_in", lambda v=v: rep_barge_in(v))  # type: ignore[misc]
                    await timed(
                        v,
                        "tool",
                        lambda v=v: rep_tool(v, tool_name, tool_args, tool_own),  # type: ignore[misc]
                    )
                if r % 10 == 9:
                    print(f"  {r + 1}/{args.reps} repetitions", file=sys.stderr)
            for v in variants:  # one live session each, all through the path repetitions
                v.worker_cores = (tree_cpu_seconds(v.worker_pid) - cpu0[v.label]) / (
                    time.monotonic() - t0
                )
                if v.caller is not None:
                    await v.caller.leave()
            for r in range(args.greetings):
                for v in variants:
                    await timed(
                        v,
                        "greeting",
                        lambda v=v: rep_greeting(v, fake, v.lk_url),  # type: ignore[misc]
                    )
                if r % 10 == 9:
                    print(f"  {r + 1}/{args.greetings} greetings", file=sys.stderr)
        finally:
            for v, st in zip(variants, stacks, strict=False):
                for w in st.workers.values():
                    v.loop_blocks_ms += [int(m) for m in BLOCKED.findall("\n".join(w.lines))]
                await st.stop()
    return {
        **provenance(" ".join(["python -m bench.latency", *sys.argv[1:]])),
        "reps": args.reps,
        "greetings": args.greetings,
        "tool": {"name": tool_name, "own_time_ms": round(tool_own * 1000, 3)},
        "variants": [
            {
                "label": v.label,
                "env": v.env,
                "paths": {p: summary(v.samples[p]) for p in PATHS},
                "greeting_breakdown_ms": {
                    k: summary([g[k] for g in v.greeting_parts])["p50"]
                    for k in (v.greeting_parts[0] if v.greeting_parts else {})
                },
                "errors": v.errors,
                "event_loop_blocked_ms": sorted(v.loop_blocks_ms, reverse=True),
                "worker_cpu_cores_one_session": None
                if v.worker_cores is None
                else round(v.worker_cores, 3),
                "raw_ms": {p: [round(x * 1000, 2) for x in v.samples[p]] for p in PATHS},
            }
            for v in variants
        ],
    }


def table(result: dict[str, Any]) -> str:
    vs = result["variants"]
    head = "| path | stat | " + " | ".join(v["label"] for v in vs)
    sep = "|---|---|" + "---|" * len(vs)
    if len(vs) >= 2:
        head += f" | {vs[0]['label']} / {vs[-1]['label']}"
        sep += "---|"
    lines = [head + " |", sep]
    for p in PATHS:
        for stat in ("p50", "p95", "p99", "max"):
            vals = [v["paths"][p][stat] for v in vs]
            row = f"| {p} (n={vs[0]['paths'][p]['n']}) | {stat} | " + " | ".join(
                fmt(x) for x in vals
            )
            if len(vs) >= 2:
                a, b = vals[0], vals[-1]
                row += " | " + (f"{a / b:.2f}×" if a is not None and b else "–")
            lines.append(row + " |")
    return "\n".join(lines)


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    out = [
        "# kaiwa latency benchmark",
        "",
        f"- command: `{result['command']}`",
        f"- date: {result['date']}, commit `{result['commit']}`"
        + (" (+ uncommitted changes)" if result["dirty"] else ""),
        f"- machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}; "
        f"load average at the end {m['load_average']}",
        f"- versions: {json.dumps(result['versions'])}",
        f"- {result['reps']} repetitions per path, {result['greetings']} greetings; "
        f"tool: `{result['tool']['name']}` (own run time {result['tool']['own_time_ms']} ms, "
        "subtracted)",
        "",
        "All figures in milliseconds; percentiles are nearest-rank.",
        "",
        table(result),
        "",
        "Configurations:",
        "",
    ]
    for v in result["variants"]:
        out.append(f"- **{v['label']}**: `{json.dumps(v['env'])}` (on top of kaiwa's defaults)")
        if v["greeting_breakdown_ms"]:
            parts = ", ".join(f"{k} {x}" for k, x in v["greeting_breakdown_ms"].items())
            out.append(f"  - greeting timeline, median ms after join start: {parts}")
        if v.get("worker_cpu_cores_one_session") is not None:
            out.append(
                f"  - worker CPU with one live session during the path repetitions: "
                f"{v['worker_cpu_cores_one_session']:.3f} cores"
            )
        blocks = v["event_loop_blocked_ms"]
        out.append(
            f"  - worker event loop blocked (livekit-agents loop monitor): {len(blocks)} times"
            + (f", longest {blocks[0]} ms" if blocks else "")
        )
        if v["errors"]:
            out.append(f"  - {len(v['errors'])} failed repetitions: {v['errors'][:3]}")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--greetings", type=int, default=50)
    ap.add_argument(
        "--variant",
        action="append",
        default=[],
        help="stock | tuned | label:KEY=VAL,... (on top of tuned); default: stock and tuned",
    )
    ap.add_argument(
        "--env", action="append", default=[], help="KEY=VAL for every worker (e.g. logging)"
    )
    ap.add_argument("--out", type=Path, default=RESULTS, help="directory for latency.{md,json}")
    args = ap.parse_args()
    args.env = dict(e.split("=", 1) for e in args.env)
    logging.basicConfig(level=logging.WARNING)
    args.tool = pick_tool()
    result = asyncio.run(run(args))
    md = markdown(result)
    write_json(args.out / "latency.json", result)
    (args.out / "latency.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()

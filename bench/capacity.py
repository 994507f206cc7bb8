"""How many conversations one kaiwa worker carries on this machine.

    .venv/bin/python -m bench.capacity                        # both executors, N = 1, 2, 4, ...
    .venv/bin/python -m bench.capacity --steps 1,2 --step-seconds 8 --out /tmp/x   # quick look

N simulated callers (real WebRTC participants in a separate load-generator process) each
join their own room, hear the greeting, then speak in turns: a pause, 0.6 s of sharp-onset
"speech", and the Gemini fake (auto script, zero think time) answers after its 500 ms
end-of-turn silence with 1.5 s of audio. Per N we record the input and output latencies
(defined as in bench/latency.py), time to greeting, failed sessions, and the CPU of every
party over the steady window: the worker tree (main + job processes), livekit-server, the
load generator and the orchestrator (which hosts the Gemini fake), plus the worker's
memory. Latencies are taken over the steady window only (all callers joined; turns in
progress), so job start-up under load shows in time to greeting instead. N grows until
p95 input or output latency exceeds the budget (100 ms) or a session
fails, for the process and the thread job executors.

The worker runs with KAIWA_LOAD_THRESHOLD=inf: LiveKit's admission control counts the whole
machine's CPU (the load generator and livekit-server included) and would otherwise refuse
jobs before kaiwa itself is saturated. Where the default 0.7 would have stopped admission
is reported per step (machine CPU).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench.common import (
    ONSET_PEAK,
    RESULTS,
    BenchCaller,
    Stack,
    new_caller,
    peak,
    provenance,
    summary,
    tone,
    write_json,
)
from tests.fakes.gemini_live import FakeConversation, GeminiLiveFake
from tests.support.stack import ROOT

log = logging.getLogger("bench.capacity")
BUDGET_MS = 100.0
MAP_PREFIX = "bench-map"
SPEECH_S = 0.6

# --- load generator (a separate process) -----------------------------------------------------


@dataclass
class CallerRecord:
    room: str
    join_started: float = 0.0
    greeting_heard: float | None = None
    onsets: list[float] = field(default_factory=list)
    loud_runs: list[float] = field(default_factory=list)
    turns: int = 0
    error: str | None = None


async def one_caller(
    url: str, agent: str, start_at: float, steady_end: float, rec_out: list[CallerRecord]
) -> None:
    c: BenchCaller = new_caller(url, agent, prefix="cap")
    rec = CallerRecord(c.room_name)
    rec_out.append(rec)
    try:
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))  # staggered joins
        await c.join(timeout=20)
        rec.join_started = c.join_started
        rec.greeting_heard = await c.wait_loud(c.join_started, timeout=30)
        await c.wait_quiet(0.3, timeout=30)
        # tell the orchestrator which fake conversation is ours (typed text → client_content)
        sent = time.monotonic()
        await c.send_chat(f"{MAP_PREFIX} {c.room_name}")
        await c.wait_loud(sent, timeout=20)  # the fake's "You said: ..." reply
        await c.wait_quiet(0.3, timeout=30)
        while time.monotonic() < steady_end:
            await asyncio.sleep(random.uniform(0.3, 0.8))  # pacing: a caller's pause
            said = time.monotonic()
            c.say(tone(SPEECH_S))
            await c.wait_loud(said + SPEECH_S, timeout=15)  # the agent's answer
            await c.wait_quiet(0.3, timeout=30)
            rec.turns += 1
    except Exception as e:
        rec.error = f"{type(e).__name__}: {e}"[:300]
    finally:
        rec.onsets = list(c.clip_onsets)
        rec.loud_runs = c.loud_runs()
        with contextlib.suppress(Exception):
            await c.leave()


async def loadgen(args: argparse.Namespace) -> dict[str, Any]:
    import resource

    t0 = time.monotonic()
    ramp = 0.25 * args.n
    steady_start = t0 + ramp + 6.0  # joins + greeting + mapping reply
    steady_end = steady_start + args.seconds
    recs: list[CallerRecord] = []
    tasks = [
        asyncio.create_task(one_caller(args.url, args.agent, t0 + 0.25 * i, steady_end, recs))
        for i in range(args.n)
    ]
    await asyncio.sleep(max(0.0, steady_start - time.monotonic()))
    print("STEADY", flush=True)
    await asyncio.sleep(max(0.0, steady_end - time.monotonic()))
    print("END", flush=True)
    await asyncio.wait(tasks, timeout=60)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "callers": [r.__dict__ for r in recs],
        "steady": [steady_start, steady_end],
        "cpu_s_total": ru.ru_utime + ru.ru_stime,
        "max_rss_mb": ru.ru_maxrss / 1024,
    }


# --- orchestrator ---------------------------------------------------------------------------


class CpuMeter:
    """CPU seconds of process trees between two samples (per pid, so processes that come
    and go in between are counted for the part we saw)."""

    def __init__(self, roots: dict[str, int]) -> None:
        self.roots = roots
        self.start: dict[str, dict[int, float]] = {}
        self.t0 = 0.0

    def _sample(self) -> dict[str, dict[int, float]]:
        out: dict[str, dict[int, float]] = {}
        for name, pid in self.roots.items():
            d: dict[int, float] = {}
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(abs(pid))
                # a negative pid means "this process alone" (the orchestrator is the parent
                # of everything else, which is measured separately)
                tree = [root] if pid < 0 else [root, *root.children(recursive=True)]
                for p in tree:
                    with contextlib.suppress(psutil.Error):
                        t = p.cpu_times()
                        d[p.pid] = t.user + t.system
            out[name] = d
        return out

    def begin(self) -> None:
        self.start = self._sample()
        self.t0 = time.monotonic()
        psutil.cpu_percent()  # arms the machine-wide counter

    def end(self) -> dict[str, float]:
        """Cores used by each tree over the window, plus the machine-wide CPU fraction."""
        now = self._sample()
        wall = time.monotonic() - self.t0
        res = {
            name: sum(v - self.start.get(name, {}).get(pid, 0.0) for pid, v in d.items()) / wall
            for name, d in now.items()
        }
        res["machine_fraction"] = psutil.cpu_percent() / 100
        return res


def tree_memory_mb(pid: int) -> dict[str, float]:
    rss = pss = 0
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        for p in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                m = p.memory_full_info()
                rss += m.rss
                pss += getattr(m, "pss", m.rss)
    return {"rss_mb": round(rss / 2**20, 1), "pss_mb": round(pss / 2**20, 1)}


def input_latencies(conv: FakeConversation, onsets: list[float]) -> list[float]:
    out: list[float] = []
    chunks = conv.audio
    i = 0
    for onset in sorted(onsets):
        while i < len(chunks) and chunks[i].at < onset:
            i += 1
        j = i
        while j < len(chunks) and peak(chunks[j].pcm) <= ONSET_PEAK:
            j += 1
        if j < len(chunks) and chunks[j].at - onset < 2.0:
            out.append(chunks[j].at - onset)
    return out


def output_latencies(
    conv: FakeConversation, loud_runs: list[float], since: float = 0.0
) -> list[float]:
    out: list[float] = []
    for sp in conv.speeches:
        sent = sp.first_audio_sent_at
        if sent is None or sent < since:
            continue
        heard = next((t for t in loud_runs if t >= sent), None)
        if heard is not None and heard - sent < 1.0:
            out.append(heard - sent)
    return out


async def run_step(
    fake: GeminiLiveFake,
    stack: Stack,
    agent: str,
    n: int,
    seconds: float,
    workdir: Path,
    idle_mem: dict[str, float],
) -> dict[str, Any]:
    assert stack.livekit is not None and stack.livekit.process is not None
    assert stack.livekit.process.proc is not None
    worker = stack.workers[agent]
    assert worker.proc is not None
    first_conv = len(fake.conversations)
    out_file = workdir / f"loadgen-{agent}-{n}.json"
    lg = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.capacity",
        "loadgen",
        "--url",
        stack.livekit.url,
        "--agent",
        agent,
        "--n",
        str(n),
        "--seconds",
        str(seconds),
        "--out",
        str(out_file),
        stdout=asyncio.subprocess.PIPE,
        cwd=str(ROOT),
    )
    meter = CpuMeter(
        {
            "worker": worker.proc.pid,
            "livekit_server": stack.livekit.process.proc.pid,
            "loadgen": lg.pid,
            "orchestrator_fake": -psutil.Process().pid,
        }
    )
    cpu: dict[str, float] = {}
    mem: dict[str, float] = {}
    lags: list[float] = []

    async def loop_lag() -> None:
        """How late the orchestrator's loop (the fake's loop) runs a 10 ms timer."""
        while True:
            t = time.monotonic()
            await asyncio.sleep(0.01)
            lags.append(time.monotonic() - t - 0.01)

    lag_task: asyncio.Task[None] | None = None
    assert lg.stdout is not None
    async with asyncio.timeout(seconds + 0.25 * n + 120):
        async for raw in lg.stdout:
            line = raw.decode().strip()
            if line == "STEADY":
                meter.begin()
                lag_task = asyncio.create_task(loop_lag())
            elif line == "END":
                cpu = meter.end()
                if lag_task is not None:
                    lag_task.cancel()
                mem = tree_memory_mb(worker.proc.pid)
        await lg.wait()
    data = json.loads(out_file.read_text())
    convs = fake.conversations[first_conv:]
    by_room: dict[str, FakeConversation] = {}
    for conv in convs:
        for t in conv.user_texts:
            if m := re.search(rf"{MAP_PREFIX} (\S+)", t.text):
                by_room[m.group(1)] = conv
    inp: list[float] = []
    outp: list[float] = []
    greet: list[float] = []
    failures: list[str] = []
    turns = 0
    for c in data["callers"]:
        if c["error"]:
            failures.append(f"{c['room']}: {c['error']}")
        if c["greeting_heard"] is not None:
            greet.append(c["greeting_heard"] - c["join_started"])
        mapped = by_room.get(c["room"])
        if mapped is None:
            if not c["error"]:
                failures.append(f"{c['room']}: no Gemini conversation mapped")
            continue
        turns += c["turns"]
        # steady state only: the callers' turns once everyone has joined (greetings and
        # job starts under load are reported as time to greeting)
        lo, hi = data["steady"]
        inp += input_latencies(mapped, [t for t in c["onsets"] if lo <= t <= hi])
        outp += output_latencies(mapped, c["loud_runs"], lo)
        if any(s.disconnected for s in mapped.speeches):
            failures.append(f"{c['room']}: Gemini socket dropped mid-turn")
    # every job has ended before the next step (bounded)
    with contextlib.suppress(TimeoutError):
        await fake.wait_until(
            lambda: all(not c.live_connection for c in convs) or None,
            timeout=30,
            what="the step's sessions to end",
        )
    s_in, s_out = summary(inp), summary(outp)
    worst_p95 = max((x for x in (s_in["p95"], s_out["p95"]) if x is not None), default=None)
    ok = not failures and worst_p95 is not None and worst_p95 <= BUDGET_MS
    step = {
        "n": n,
        "ok": ok,
        "worst_p95_ms": worst_p95,
        "input": s_in,
        "output": s_out,
        "greeting": summary(greet),
        "turns": turns,
        "failures": failures,
        "cpu_cores": {k: round(v, 3) for k, v in cpu.items()},
        "worker_cpu_per_session": round(cpu.get("worker", 0.0) / n, 3),
        "fake_loop_lag_ms": summary(lags),
        "loadgen_cpu_s_total": round(data["cpu_s_total"], 1),
        "worker_memory": mem,
        "worker_pss_per_session_mb": round(
            (mem.get("pss_mb", 0.0) - idle_mem.get("pss_mb", 0.0)) / n, 1
        ),
    }
    print(
        f"    N={n}: p95 in {s_in['p95']} / out {s_out['p95']} ms, greeting p50 "
        f"{step['greeting']['p50']} ms, failures {len(failures)}, cores {step['cpu_cores']}, "
        f"fake loop lag p95 {step['fake_loop_lag_ms']['p95']} ms, "
        f"worker {mem}",
        file=sys.stderr,
    )
    return step


async def orchestrate(args: argparse.Namespace) -> dict[str, Any]:
    deadline = time.monotonic() + args.max_minutes * 60
    results: list[dict[str, Any]] = []
    async with GeminiLiveFake() as fake:
        fake.script.greeting_seconds = 1.0
        fake.script.reply_seconds = 1.5
        for executor in args.executors:
            workdir = Path(tempfile.mkdtemp(prefix=f"kaiwa-cap-{executor}-"))
            stack = Stack(workdir)
            agent = f"kaiwa-cap-{executor}"
            steps: list[dict[str, Any]] = []
            try:
                await stack.start_livekit()
                await stack.start_worker(
                    agent, fake.env(), {"KAIWA_JOB_EXECUTOR": executor, **args.env}
                )
                worker = stack.workers[agent]
                assert worker.proc is not None
                await asyncio.sleep(3)  # pacing: let the idle process pool settle
                idle_mem = tree_memory_mb(worker.proc.pid)
                print(f"  {executor} executor (idle worker {idle_mem})", file=sys.stderr)
                for n in args.steps:
                    if time.monotonic() + args.step_seconds + 40 > deadline:
                        print("    time budget reached", file=sys.stderr)
                        break
                    step = await run_step(
                        fake, stack, agent, n, args.step_seconds, workdir, idle_mem
                    )
                    steps.append(step)
                    if not step["ok"] and not args.all_steps:
                        break
            finally:
                await stack.stop()
            passing = [s["n"] for s in steps if s["ok"]]
            results.append(
                {
                    "executor": executor,
                    "idle_worker_memory": idle_mem if steps else {},
                    "capacity": max(passing) if passing else 0,
                    "steps": steps,
                }
            )
    return {
        **provenance(" ".join(["python -m bench.capacity", *sys.argv[1:]])),
        "budget_ms": BUDGET_MS,
        "step_seconds": args.step_seconds,
        "speech_s": SPEECH_S,
        "executors": results,
    }


def markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    out = [
        "# kaiwa capacity benchmark",
        "",
        f"- command: `{r['command']}`",
        f"- date: {r['date']}, commit `{r['commit']}`"
        + (" (+ uncommitted changes)" if r["dirty"] else ""),
        f"- machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}; "
        f"load average at the end {m['load_average']}",
        f"- versions: {json.dumps(r['versions'])}",
        f"- each step: {r['step_seconds']} s of steady conversation per caller after "
        "joining and the greeting; budget: p95 input and output latency ≤ "
        f"{r['budget_ms']:.0f} ms with no failed session",
        "",
        "Capacity found (largest N within budget): "
        + ", ".join(f"**{e['executor']} executor: {e['capacity']}**" for e in r["executors"]),
        "",
        "| executor | N | ok | input p50/p95/p99 | output p50/p95/p99 | greeting p50/p95 "
        "| turns | failures | worker cores (per session) | livekit-server cores "
        "| load generator cores | fake+orchestrator cores | fake loop lag p95/max "
        "| machine CPU | worker PSS MB (per session) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in r["executors"]:
        for s in e["steps"]:
            c = s["cpu_cores"]
            out.append(
                f"| {e['executor']} | {s['n']} | {'yes' if s['ok'] else 'NO'} "
                f"| {s['input']['p50']}/{s['input']['p95']}/{s['input']['p99']} "
                f"| {s['output']['p50']}/{s['output']['p95']}/{s['output']['p99']} "
                f"| {s['greeting']['p50']}/{s['greeting']['p95']} | {s['turns']} "
                f"| {len(s['failures'])} | {c.get('worker', 0):.2f} "
                f"({s['worker_cpu_per_session']:.3f}) | {c.get('livekit_server', 0):.2f} "
                f"| {c.get('loadgen', 0):.2f} | {c.get('orchestrator_fake', 0):.2f} "
                f"| {s['fake_loop_lag_ms']['p95']}/{s['fake_loop_lag_ms']['max']} "
                f"| {c.get('machine_fraction', 0):.0%} "
                f"| {s['worker_memory'].get('pss_mb')} ({s['worker_pss_per_session_mb']}) |"
            )
    out += [
        "",
        "Worker only (the worker process tree; callers, livekit-server and the fake are "
        "measured apart above):",
        "",
        "| executor | N | ok | worker cores | cores per call | calls per core "
        "| worker PSS MB | PSS per call MB (above the idle worker) "
        "| PSS per added call MB (from the previous step) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for e in r["executors"]:
        prev: dict[str, Any] | None = None
        for s in e["steps"]:
            per = s["worker_cpu_per_session"]
            pss = s["worker_memory"].get("pss_mb")
            added = "–"
            if prev is not None and pss is not None and prev["worker_memory"].get("pss_mb"):
                added = f"{(pss - prev['worker_memory']['pss_mb']) / (s['n'] - prev['n']):.1f}"
            out.append(
                f"| {e['executor']} | {s['n']} | {'yes' if s['ok'] else 'NO'} "
                f"| {s['cpu_cores'].get('worker', 0):.3f} | {per:.3f} "
                f"| {1 / per if per else 0:.1f} | {pss} "
                f"| {s['worker_pss_per_session_mb']} | {added} |"
            )
            prev = s
    out += [
        "",
        "Cores = CPU seconds per wall second over the steady window (2.0 = the whole "
        "machine). Worker = the worker process and its job processes; PSS splits shared "
        "pages between the forked processes (RSS would count them once per process). "
        "Failures:",
        "",
    ]
    for e in r["executors"]:
        for s in e["steps"]:
            for f in s["failures"][:5]:
                out.append(f"- {e['executor']} N={s['n']}: {f}")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd")
    lg = sub.add_parser("loadgen", help="internal: the callers of one step")
    lg.add_argument("--url", required=True)
    lg.add_argument("--agent", required=True)
    lg.add_argument("--n", type=int, required=True)
    lg.add_argument("--seconds", type=float, required=True)
    lg.add_argument("--out", required=True)
    ap.add_argument("--executors", default="process,thread")
    ap.add_argument("--steps", default="1,2,4,6,8,10,12,14,16,20,24")
    ap.add_argument("--step-seconds", type=float, default=30.0)
    ap.add_argument("--max-minutes", type=float, default=15.0)
    ap.add_argument("--env", action="append", default=[], help="KEY=VAL for the worker")
    ap.add_argument(
        "--all-steps",
        action="store_true",
        help="run every step even after one misses the budget (cores per call on a busy box)",
    )
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    if args.cmd == "loadgen":
        Path(args.out).write_text(json.dumps(asyncio.run(loadgen(args))))
        return
    args.executors = args.executors.split(",")
    args.steps = [int(x) for x in args.steps.split(",")]
    args.env = dict(e.split("=", 1) for e in args.env)
    result = asyncio.run(orchestrate(args))
    md = markdown(result)
    write_json(args.out / "capacity.json", result)
    (args.out / "capacity.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()

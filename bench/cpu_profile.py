"""Where a worker's CPU goes under load: py-spy, per-thread CPU and perf, during bench.capacity.

    .venv/bin/python -m bench.cpu_profile --executor thread --n 4 --seconds 30
    .venv/bin/python -m bench.cpu_profile --target floor --n 4          # the minimal bridge

Starts `bench.capacity` (one step of N callers; or `bench.floor_bridge` with the same
callers) as a subprocess, waits until the callers are in steady conversation, then over
the same window:

* samples every thread of the worker tree from /proc (utime + stime by thread name): the
  split between Python threads and the native ones (livekit-ffi's tokio runtime, WebRTC);
* runs `py-spy record --nonblocking --gil` on the worker tree (raw collapsed stacks and a
  flamegraph SVG; `--nonblocking` does not pause the target, so latency is undisturbed;
  `--gil` keeps only the thread holding the GIL, i.e. Python actually executing, so a
  thread waiting for the GIL or in a blocking call is not counted as busy);
  each sample is attributed to the category of its leaf-most frame that matches a rule
  below (FFI, resampling, chunking, base64/JSON, websockets/TLS, transcript sync, kaiwa's
  hooks, ...). Percentages of samples are robust to other processes on the machine;
* optionally (`--perf`) `perf record -e cpu-clock` on the worker pids: the split by shared
  object (libpython, liblivekit_ffi.so, libcrypto, numpy, kernel), which also covers the
  native threads py-spy cannot see.

Writes <out>/profile-<label>.{json,collapsed.txt,svg} and prints a summary.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from bench.common import RESULTS, provenance, write_json
from tests.support.stack import ROOT

PY_SPY = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")

# (category, regex on one collapsed frame "func (path:line)"); the leaf-most frame of a
# sample that matches any rule decides its category; rules are tried in order per frame.
RULES: list[tuple[str, str]] = [
    ("transcript sync (speaking rate STFT, synchronizer)", r"voice/transcription/"),
    ("resampling", r"audio_resampler|AudioResampler"),
    ("chunking (AudioByteStream)", r"agents/utils/audio\.py"),
    ("websocket compression (permessage-deflate)", r"permessage_deflate"),
    ("websocket masking (os.urandom per frame)", r"randbytes|urandom"),
    (
        "base64/JSON/pydantic (genai send/recv)",
        r"base64|json/|pydantic|genai/_common|_live_converters|genai/types\.py",
    ),
    (
        "websockets framing + TLS + socket writes",
        r"websockets/|ssl\.py|sslproto|_SelectorSocketTransport",
    ),
    ("google-genai live client", r"genai/"),
    (
        "cross-thread wakeups (call_soon_threadsafe self-pipe)",
        r"_write_to_self|_read_from_self|call_soon_threadsafe",
    ),
    (
        "livekit FFI (event dispatch, requests, handles, protobuf)",
        r"rtc/_ffi_client|rtc/_proto|protobuf|rtc/_utils",
    ),
    ("livekit.rtc audio stream/source", r"rtc/audio_stream|rtc/audio_source|rtc/audio_frame"),
    ("livekit.rtc other", r"(^|[ (/])rtc/"),
    ("kaiwa agent/gemini hooks", r"(^|[ (/])agent/gemini/"),
    ("kaiwa call record / desk (SQLite, off the loop)", r"(^|[ (/])(desk/|agent/recorder)"),
    ("kaiwa other agent/", r"(^|[ (/])agent/"),
    ("plugin (livekit-plugins-google)", r"plugins/google|(^|[ (/])google/realtime/"),
    ("agents room_io (in/out)", r"voice/room_io|voice/io\.py"),
    ("agents voice pipeline (AgentActivity, generation)", r"agents/voice/"),
    ("agents other (utils, aio, ipc, metrics)", r"agents/"),
    ("numpy", r"numpy/"),
    ("logging", r"logging/"),
    ("asyncio event loop", r"asyncio/|selectors\.py"),
    ("bench (floor bridge)", r"bench/floor_bridge"),
]
COMPILED = [(c, re.compile(p)) for c, p in RULES]
# `--nonblocking` cannot tell a waiting thread from a running one: samples whose leaf frame
# is a blocking wait are idle time, dropped before the percentages are taken.
IDLE = re.compile(
    r"^(Condition\.wait|Event\.wait|EpollSelector\.select|select |_worker \(concurrent/futures"
    r"/thread\.py:81\)|Thread\.join|_wait_for_tstate_lock|sleep )"
)


def categorize(stack: str) -> str:
    frames = stack.split(";")
    for fr in reversed(frames):
        for cat, rx in COMPILED:
            if rx.search(fr):
                return cat
    return "other (interpreter, threading, unknown)"


def task_of(frames: list[str]) -> str:
    """The asyncio task or callback a sample ran in (the framework's log_exceptions wrapper
    skipped), or the thread's own frame outside any task (FFI callbacks, thread pools)."""
    name = ""
    for i, f in enumerate(frames):
        if f.startswith("Handle._run") and i + 1 < len(frames):
            j = i + 1
            if frames[j].startswith("log_exceptions.") and j + 1 < len(frames):
                j += 1
            name = frames[j]
    if not name:
        name = "[outside tasks] " + (frames[1] if len(frames) > 1 else frames[0])
    return re.sub(r":\d+\)$", ")", name)


def summarize_collapsed(path: Path) -> dict[str, Any]:
    cats: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    leaf: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    total = idle = 0
    # inclusive counts for a few functions worth naming
    named = {
        "kaiwa push_audio (gate + plugin push)": r"push_audio \(agent/gemini/session\.py",
        "kaiwa SpeechGate.push": r"push \(.*agent/gemini/speech\.py",
        "kaiwa LiveConnection (observe messages)": r"agent/gemini/connection\.py",
        "kaiwa _send_client_event": r"_send_client_event \(.*agent/gemini",
        "plugin push_audio": r"push_audio \(.*plugins/google/realtime",
        "plugin _send_task": r"_send_task \(.*plugins/google",
        "plugin _recv_task": r"_recv_task \(.*plugins/google",
        "genai send_realtime_input": r"send_realtime_input",
        "genai receive": r"receive \(.*google/genai/live",
        "room_io audio input (_forward / stream)": r"room_io/_input",
        "room_io audio output (capture_frame)": r"room_io/_output",
        "transcript sync (synchronizer + speaking-rate STFT)": r"voice/transcription/",
        "AudioStream iteration (FFI events)": r"audio_stream\.py",
        "FfiClient listen/dispatch": r"_ffi_client\.py",
        "AudioSource.capture_frame": r"capture_frame",
        "websockets send/recv": r"websockets/",
        "ssl": r"ssl",
    }
    named_rx = {k: re.compile(v) for k, v in named.items()}
    named_c: collections.Counter[str] = collections.Counter()
    tasks: collections.Counter[str] = collections.Counter()
    for line in path.read_text().splitlines():
        stack, _, n_s = line.rpartition(" ")
        if not stack:
            continue
        n = int(n_s)
        frames = stack.split(";")
        if IDLE.search(frames[-1]):
            idle += n
            continue
        total += n
        cats[categorize(stack)] += n
        leaf[frames[-1]] += n
        threads[frames[0]] += n
        for f in set(frames):
            incl[f] += n
        for k, rx in named_rx.items():
            if any(rx.search(f) for f in frames):
                named_c[k] += n
        tasks[task_of(frames)] += n

    def pct(c: collections.Counter[str], k: int | None = None) -> list[list[Any]]:
        return [[name, v, round(100 * v / max(total, 1), 1)] for name, v in c.most_common(k)]

    return {
        "samples": total,
        "idle_samples_dropped": idle,
        "categories": pct(cats),
        "named_inclusive": pct(named_c),
        "tasks": pct(tasks, 25),
        "top_leaf_frames": pct(leaf, 25),
        "threads": pct(threads, 15),
    }


def thread_cpu(pids: list[int]) -> dict[tuple[int, int], tuple[str, float]]:
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[tuple[int, int], tuple[str, float]] = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError):
                    raw = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
                    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
                    rest = raw[raw.rindex(")") + 2 :].split()
                    out[(pid, int(tid))] = (comm, (int(rest[11]) + int(rest[12])) / tick)
    return out


def tree(pid: int) -> list[int]:
    with contextlib.suppress(psutil.Error):
        p = psutil.Process(pid)
        return [pid, *(c.pid for c in p.children(recursive=True))]
    return [pid]


def by_thread_name(
    a: dict[tuple[int, int], tuple[str, float]],
    b: dict[tuple[int, int], tuple[str, float]],
    wall: float,
) -> list[list[Any]]:
    agg: dict[str, float] = collections.defaultdict(float)
    for k, (comm, t) in b.items():
        # threads named after the process ("python") are Python threads; group digits away
        name = re.sub(r"\d+", "#", comm)
        agg[name] += t - a.get(k, (comm, 0.0))[1]
    return [[n, round(v / wall, 4)] for n, v in sorted(agg.items(), key=lambda kv: -kv[1]) if v > 0]


def perf_dso(pids: list[int], seconds: float, workdir: Path) -> list[list[Any]] | None:
    if not shutil.which("perf"):
        return None
    data = workdir / "perf.data"
    subprocess.run(
        ["perf", "record", "-q", "-e", "cpu-clock", "-F", "499", "-o", str(data),
         "-p", ",".join(map(str, pids)), "--", "sleep", str(seconds)],
        capture_output=True, check=False,
    )  # fmt: skip
    rep = subprocess.run(
        ["perf", "report", "-i", str(data), "--stdio", "--sort", "dso", "--percent-limit", "0.5"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    rows = []
    for line in rep.stdout.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(\S+)", line)
        if m:
            rows.append([m.group(2), float(m.group(1))])
    return rows


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="kaiwa-profile-"))
    settle = 12.0 + 0.25 * args.n
    step_seconds = args.seconds + settle + 5
    if args.target == "floor":
        cmd = [sys.executable, "-m", "bench.floor_bridge", "run", "--n", str(args.n),
               "--step-seconds", str(step_seconds), "--out", str(work)]  # fmt: skip
    else:
        cmd = [sys.executable, "-m", "bench.capacity", "--executors", args.executor,
               "--steps", str(args.n), "--step-seconds", str(step_seconds),
               "--out", str(work), *(x for e in args.env for x in ("--env", e))]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *cmd, cwd=str(ROOT), stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL
    )
    assert proc.stderr is not None
    worker_pid = 0
    async for raw in proc.stderr:
        line = raw.decode(errors="replace").rstrip()
        print(line, file=sys.stderr)
        if "idle worker" in line or "bridge ready" in line:
            break
    # the worker: kaiwa's entry, the bench entry (BENCH_* variants) or the floor bridge
    markers = ("bench.floor_bridge serve", "agent/agent.py", "bench/bench_worker.py")
    for c in psutil.Process(proc.pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if any(m in " ".join(c.cmdline()) for m in markers):
                worker_pid = c.pid
                break
    if not worker_pid:
        proc.send_signal(signal.SIGINT)  # the step's own cleanup stops its stack
        await proc.wait()
        raise SystemExit("worker process not found")
    drain = asyncio.create_task(_drain(proc))
    await asyncio.sleep(settle)  # joins, greetings, the mapping reply
    pids = tree(worker_pid)
    base = work / f"profile-{args.label}"
    t0_threads = thread_cpu(pids)
    t0 = time.monotonic()
    spy_common = ["--pid", str(worker_pid), "--duration", str(int(args.seconds)),
                  "--rate", str(args.rate), "--nonblocking", "--gil"]  # fmt: skip
    if args.target != "floor" and args.executor == "process":
        spy_common.append("--subprocesses")
    spies = [
        await asyncio.create_subprocess_exec(
            PY_SPY,
            "record",
            *spy_common,
            "--format",
            fmt,
            "--output",
            str(out),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        for fmt, out in (("raw", f"{base}.collapsed.txt"), ("flamegraph", f"{base}.svg"))
    ]
    perf_rows: list[list[Any]] | None = None
    if args.perf:
        perf_rows = await asyncio.to_thread(perf_dso, tree(worker_pid), args.seconds, work)
    for s in spies:
        await s.wait()
    wall = time.monotonic() - t0
    t1_threads = thread_cpu(tree(worker_pid))
    threads = by_thread_name(t0_threads, t1_threads, wall)
    await proc.wait()
    drain.cancel()
    cap, summary = _collect(work, base, args.out)
    return {
        **provenance(" ".join(["python -m bench.cpu_profile", *sys.argv[1:]])),
        "label": args.label,
        "target": args.target,
        "executor": args.executor,
        "n": args.n,
        "window_s": round(wall, 1),
        "thread_cores": threads,
        "worker_cores_total": round(sum(v for _, v in threads), 3),
        "py_spy": summary,
        "perf_dso_percent": perf_rows,
        "step": cap,
    }


def _collect(work: Path, base: Path, out_dir: Path) -> tuple[Any, dict[str, Any]]:
    cap = None
    for name in ("capacity.json", "floor.json"):
        if (work / name).exists():
            cap = json.loads((work / name).read_text())
    summary = summarize_collapsed(Path(f"{base}.collapsed.txt"))
    out_dir.mkdir(parents=True, exist_ok=True)
    for suffix in (".collapsed.txt", ".svg"):
        src = Path(f"{base}{suffix}")
        if src.exists():
            shutil.copy(src, out_dir / src.name)
    return cap, summary


async def _drain(proc: asyncio.subprocess.Process) -> None:
    assert proc.stderr is not None
    async for raw in proc.stderr:
        print(raw.decode(errors="replace").rstrip(), file=sys.stderr)


def report(paths: list[Path]) -> str:
    """Markdown tables comparing profiles (re-categorized from their collapsed stacks)."""
    runs = []
    for p in paths:
        r = json.loads(p.read_text())
        collapsed = p.with_name(p.name.replace(".json", ".collapsed.txt"))
        r["py_spy"] = summarize_collapsed(collapsed)
        runs.append(r)
    labels = [r["label"] for r in runs]
    out = ["| worker threads (cores, /proc) | " + " | ".join(labels) + " |"]
    out.append("|---" * (len(runs) + 1) + "|")
    names: list[str] = []
    for r in runs:
        names += [n for n, _ in r["thread_cores"] if n not in names]
    for n in names:
        vals = [dict(map(tuple, r["thread_cores"])).get(n) for r in runs]
        out.append(f"| {n.strip()} | " + " | ".join(f"{v:.3f}" if v else "–" for v in vals) + " |")
    out.append(
        "| **total** | " + " | ".join(f"**{r['worker_cores_total']:.3f}**" for r in runs) + " |"
    )
    for key, title in (
        ("perf_dso_percent", "perf, % of worker CPU by shared object"),
        ("categories", "py-spy --gil, % of Python samples by category (leaf-most match)"),
        ("named_inclusive", "py-spy --gil, % of Python samples under (inclusive)"),
        ("tasks", "py-spy --gil, % of Python samples by asyncio task / thread (top 25)"),
    ):
        out += ["", f"| {title} | " + " | ".join(labels) + " |", "|---" * (len(runs) + 1) + "|"]
        rows: list[str] = []
        tables = []
        for r in runs:
            src = r[key] if key == "perf_dso_percent" else r["py_spy"][key]
            d = {row[0]: row[-1] for row in (src or [])}
            tables.append(d)
            rows += [k for k in d if k not in rows]
        for k in rows:
            out.append(
                f"| {k} | " + " | ".join(f"{t[k]}" if k in t else "–" for t in tables) + " |"
            )
    out += [
        "",
        "samples (py-spy, GIL held): "
        + ", ".join(f"{r['label']} {r['py_spy']['samples']}" for r in runs),
    ]
    return "\n".join(out) + "\n"


def main() -> None:
    if sys.argv[1:2] == ["report"]:
        print(report([Path(a) for a in sys.argv[2:]]))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--target", choices=("kaiwa", "floor"), default="kaiwa")
    ap.add_argument("--executor", default="thread")
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--rate", type=int, default=200)
    ap.add_argument("--perf", action="store_true")
    ap.add_argument("--env", action="append", default=[], help="KEY=VAL for the worker")
    ap.add_argument("--label", default="")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    args.label = args.label or f"{args.target}-{args.executor}-n{args.n}"
    r = asyncio.run(main_async(args))
    write_json(args.out / f"profile-{args.label}.json", r)
    print(json.dumps({k: r[k] for k in ("worker_cores_total", "thread_cores")}, indent=1))
    for k in ("categories", "named_inclusive"):
        print(k)
        for row in r["py_spy"][k]:
            print("  ", row)
    if r["perf_dso_percent"]:
        print("perf dso", r["perf_dso_percent"])


if __name__ == "__main__":
    main()

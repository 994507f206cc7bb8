"""Token-server throughput/latency benchmark.

Starts `python -m token_server` as a separate process (one uvicorn worker, rate limit
effectively off), drives POST /token from this process with an async httpx client at a
fixed concurrency, optionally also with `wrk`, prints a table and writes
bench/results/token_server.{md,json}.

    .venv/bin/python bench/token_server.py --duration 10 --concurrency 16 [--wrk]

Client and server share the machine, so the figures are a floor for the server alone.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import re
import secrets
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import jwt

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
BODY = {"participant_name": "bench", "room_config": {"agents": [{"agent_name": "kaiwa"}]}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(port: int, secret: str, log_path: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAIWA_", "LIVEKIT_"))}
    env.update(
        {
            "PYTHONPATH": str(REPO),
            "LIVEKIT_API_KEY": "bench-key",
            "LIVEKIT_API_SECRET": secret,
            "KAIWA_TOKEN_RATE": "1000000000",
            "KAIWA_TOKEN_BURST": "1000000000",
            "KAIWA_WEB_DIR": "/nonexistent",
        }
    )
    log = log_path.open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "token_server", "--host", "127.0.0.1", "--port", str(port)],
        cwd=tempfile.gettempdir(),  # no .env from the repo
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def wait_healthy(base: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"token server exited with {proc.returncode}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit("token server did not become healthy")


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


async def drive(
    base: str, concurrency: int, duration: float | None, count: int | None
) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    remaining = [count] if count is not None else None
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=10) as client:
        start = time.perf_counter()
        deadline = start + duration if duration is not None else float("inf")

        async def worker() -> None:
            while time.perf_counter() < deadline:
                if remaining is not None:
                    if remaining[0] <= 0:
                        return
                    remaining[0] -= 1
                t0 = time.perf_counter()
                try:
                    response = await client.post("/token", json=BODY)
                    statuses[str(response.status_code)] += 1
                except httpx.HTTPError as exc:
                    statuses[type(exc).__name__] += 1
                    continue
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    latencies.sort()
    ok = statuses.get("200", 0)
    return {
        "tool": "httpx (asyncio, this process)",
        "concurrency": concurrency,
        "elapsed_s": round(elapsed, 3),
        "requests": sum(statuses.values()),
        "ok": ok,
        "errors": sum(statuses.values()) - ok,
        "statuses": dict(statuses),
        "tokens_per_s": round(ok / elapsed, 1),
        "latency_ms": {
            "p50": round(percentile(latencies, 0.50) * 1000, 2),
            "p90": round(percentile(latencies, 0.90) * 1000, 2),
            "p99": round(percentile(latencies, 0.99) * 1000, 2),
            "max": round(latencies[-1] * 1000, 2) if latencies else None,
            "mean": round(statistics.fmean(latencies) * 1000, 2) if latencies else None,
        },
    }


WRK_SCRIPT = """
wrk.method = "POST"
wrk.body   = '%s'
wrk.headers["Content-Type"] = "application/json"
"""


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(us|ms|s)", value).groups()  # type: ignore[union-attr]
    return round(float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit], 2)


def run_wrk(base: str, concurrency: int, duration: int, threads: int) -> dict[str, Any] | None:
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % json.dumps(BODY))
    cmd = [
        wrk, f"-t{threads}", f"-c{concurrency}", f"-d{duration}s", "--latency",
        "-s", script.name, f"{base}/token",
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60).stdout
    os.unlink(script.name)
    dist = dict(re.findall(r"^\s+(\d+)%\s+([\d.]+(?:us|ms|s))\s*$", out, re.M))
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    max_lat = re.search(r"Latency\s+\S+\s+\S+\s+(\S+)", out)
    return {
        "tool": "wrk",
        "command": " ".join(shlex.quote(c) for c in cmd),
        "concurrency": concurrency,
        "threads": threads,
        "requests": int(total.group(1)) if total else None,
        "tokens_per_s": float(rps.group(1)) if rps else None,
        "errors": (int(non2xx.group(1)) if non2xx else 0),
        "socket_errors": socket_errors.group(1) if socket_errors else "none",
        "latency_ms": {
            "p50": _ms(dist["50"]) if "50" in dist else None,
            "p90": _ms(dist["90"]) if "90" in dist else None,
            "p99": _ms(dist["99"]) if "99" in dist else None,
            "max": _ms(max_lat.group(1)) if max_lat else None,
        },
        "raw": out,
    }


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gib = None
    try:
        meminfo = Path("/proc/meminfo").read_text()
        kib = int(re.search(r"MemTotal:\s+(\d+)", meminfo).group(1))  # type: ignore[union-attr]
        ram_gib = round(kib / 1024 / 1024, 1)
    except (OSError, AttributeError):
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "ram_gib": ram_gib,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10
        )
    except OSError:
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def table(rows: list[dict[str, Any]]) -> str:
    head = "| tool | conc. | requests | tokens/s | p50 ms | p90 ms | p99 ms | max ms | errors |"
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lat = r["latency_ms"]
        lines.append(
            f"| {r['tool']} | {r['concurrency']} | {r['requests']} | {r['tokens_per_s']} | "
            f"{lat['p50']} | {lat['p90']} | {lat['p99']} | {lat['max']} | {r['errors']} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--count", type=int, help="stop after this many requests instead")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--wrk", action="store_true", help="also run wrk (if installed)")
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    secret = secrets.token_urlsafe(36)
    with tempfile.TemporaryDirectory() as tmp:
        proc = start_server(port, secret, Path(tmp) / "server.log")
        try:
            wait_healthy(base, proc)
            # Sanity: the token under load is the real thing.
            token = httpx.post(f"{base}/token", json=BODY).json()["participant_token"]
            claims = jwt.decode(token, secret, algorithms=["HS256"], issuer="bench-key")
            assert claims["roomConfig"]["agents"][0]["agentName"] == "kaiwa"
            # Warm-up, then the measured run(s).
            asyncio.run(drive(base, args.concurrency, None, 200))
            duration = None if args.count else args.duration
            rows = [asyncio.run(drive(base, args.concurrency, duration, args.count))]
            if args.wrk:
                wrk = run_wrk(base, args.concurrency, max(1, int(args.duration)), args.wrk_threads)
                if wrk is not None:
                    rows.append(wrk)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()

    m = machine()
    command = "python bench/token_server.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    result = {
        "benchmark": "token_server",
        "command": command.strip(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "machine": m,
        "server": "python -m token_server (uvicorn, 1 worker, open auth, rate limit off, "
        "access log on); body: " + json.dumps(BODY),
        "runs": rows,
    }
    print(table(rows))
    if args.no_write:
        return 0
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "token_server.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        "# Token server benchmark",
        "",
        f"- Command: `{result['command']}`",
        f"- Date: {result['date']}",
        f"- Git commit: {result['git_commit'] or 'none (no commits yet)'}",
        f"- Machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['ram_gib']} GiB RAM, "
        f"Python {m['python']}, {m['platform']}",
        f"- Server: {result['server']}",
        "- Load generator runs on the same machine (shares the CPUs), so these are floors. "
        "The httpx row is limited by the Python client itself (it competes with the server "
        "for the same CPUs); wrk (C) is the better estimate of server capacity.",
        "",
        table(rows),
        "",
    ]
    for row in rows:
        if row.get("tool") == "wrk":
            md += [
                "wrk command:",
                "",
                f"    {row['command']}",
                "",
                "```",
                row["raw"].strip(),
                "```",
                "",
            ]
    (RESULTS / "token_server.md").write_text("\n".join(md))
    print(f"wrote {RESULTS / 'token_server.md'} and token_server.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())

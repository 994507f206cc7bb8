"""The benchmarks still run: each on a tiny setting, as a subprocess, with no timing
assertions (numbers on a shared test machine mean nothing). bench/README.md has the real runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.stack import ROOT

pytestmark = pytest.mark.timeout(150)


def _run(args: list[str], timeout: float) -> None:
    out = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]


def test_latency_benchmark_runs(livekit_binary: str, tmp_path: Path) -> None:
    _run(
        [
            *("bench.latency", "--reps", "1", "--greetings", "1", "--variant", "tuned"),
            *("--out", str(tmp_path)),
        ],
        timeout=120,
    )
    result = json.loads((tmp_path / "latency.json").read_text())
    paths = result["variants"][0]["paths"]
    for path in ("input", "output", "barge_in", "tool", "greeting"):
        assert paths[path]["n"] == 1, (path, result["variants"][0]["errors"])
    assert "| input" in (tmp_path / "latency.md").read_text()


def test_capacity_benchmark_runs(livekit_binary: str, tmp_path: Path) -> None:
    _run(
        [
            *("bench.capacity", "--executors", "process", "--steps", "1"),
            *("--step-seconds", "4", "--out", str(tmp_path)),
        ],
        timeout=120,
    )
    result = json.loads((tmp_path / "capacity.json").read_text())
    (step,) = result["executors"][0]["steps"]
    assert step["n"] == 1 and step["turns"] >= 1, step
    assert step["cpu_cores"]["worker"] > 0


def test_screen_context_benchmark_runs(livekit_binary: str, tmp_path: Path) -> None:
    _run(
        ["bench.screen_context", "--reps", "2", "--ways", "turn", "--out", str(tmp_path)],
        timeout=120,
    )
    # the bench-only push (bench_worker.py) still works; the tool way is the product's path,
    # covered by tests/e2e/test_console.py
    (turn,) = json.loads((tmp_path / "screen_context.json").read_text())["ways"]
    assert turn["change_ms"]["n"] == 2 and turn["change_bytes_mean"] > 0, turn
    assert not turn["errors"], turn

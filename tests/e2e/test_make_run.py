"""Smoke tests of the two commands the README gives: `make run` and `make cluster`.

Each is started exactly as a developer would (`make run` in the repo, its own process
group, default ports), with the Gemini fake standing in for Google (the README's "Try it
without a Google key" exports). A participant takes a token from the endpoint the command
printed and hears the fake's greeting; then SIGINT to the process group (Ctrl-C in a
terminal) must stop every process the command started, within a bounded wait.

Default ports are needed (that is what is being tested): when one is taken, the test is
skipped outside CI and fails under CI=true.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import time
from collections.abc import AsyncIterator

import psutil
import pytest

from tests.fakes.gemini_live import GeminiLiveFake
from tests.support.caller import Caller
from tests.support.redis import redis_server_or_skip
from tests.support.stack import ROOT, ManagedProcess, find_livekit_server

pytestmark = pytest.mark.timeout(90)

RUN_PORTS = {"tcp": [7880, 7881, 8080, 8081], "udp": [7882]}
CLUSTER_PORTS = {"tcp": [6380, 7880, 7881, 7890, 7891, 8080, 8081, 8082], "udp": [7882, 7892]}
STOP_WITHIN_S = 15.0  # honcho gives its processes 5 s after SIGINT, then kills them


def _busy(ports: dict[str, list[int]]) -> list[str]:
    busy = []
    for kind, numbers in ports.items():
        for port in numbers:
            family = socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
            with socket.socket(socket.AF_INET, family) as s:
                # as the servers do: a port left in TIME_WAIT by an earlier run is free
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    busy.append(f"{kind}/{port}")
    return busy


def _need_default_ports(ports: dict[str, list[int]]) -> None:
    busy = _busy(ports)
    if busy:
        msg = f"default ports in use by something else: {', '.join(busy)}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg)
        pytest.skip(msg)
    if find_livekit_server() is None:
        msg = "no livekit-server (make livekit-server)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


def _env(gemini: GeminiLiveFake) -> dict[str, str]:
    """The developer's shell after pasting `make fake`'s exports (and nothing of ours)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KAIWA_", "LIVEKIT_", "GOOGLE_", "GEMINI_", "PYTEST_"))
    }
    env.update(gemini.env())
    env["GOOGLE_API_KEY"] = "fake-key"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _tree(root: int) -> dict[int, str]:
    """Every live process descending from `root` or in its session, pid → name."""
    found: dict[int, str] = {}
    with contextlib.suppress(psutil.Error):
        top = psutil.Process(root)
        for p in [top, *top.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                found[p.pid] = p.name()
    for p in psutil.process_iter(["pid", "name"]):
        with contextlib.suppress(psutil.Error, OSError):
            if os.getsid(p.pid) == root:
                found[p.pid] = p.info["name"]
    return found


def _alive(pids: dict[int, str]) -> dict[int, str]:
    out = {}
    for pid, name in pids.items():
        with contextlib.suppress(psutil.Error):
            p = psutil.Process(pid)
            if p.status() != psutil.STATUS_ZOMBIE and p.name() == name:
                out[pid] = name
    return out


@contextlib.asynccontextmanager
async def _command(target: str, env: dict[str, str]) -> AsyncIterator[ManagedProcess]:
    proc = ManagedProcess(f"make-{target}", ["make", target], env=env, cwd=ROOT)
    await proc.start()  # start_new_session: its own process group, like a terminal's job
    try:
        yield proc
    finally:
        await proc.stop(timeout=5)  # only if the test failed before its own SIGINT


async def _ctrl_c(proc: ManagedProcess, pids: dict[int, str]) -> float:
    """SIGINT to the process group; returns how long until no process of it was left."""
    assert proc.proc is not None
    os.killpg(proc.proc.pid, signal.SIGINT)
    sent = time.monotonic()
    code = await proc.wait_exit(STOP_WITHIN_S)
    left = _alive(pids)
    while left and time.monotonic() < sent + STOP_WITHIN_S:  # no event to wait on here
        await asyncio.sleep(0.1)
        left = _alive(pids)
    assert not left, f"still running {STOP_WITHIN_S:g}s after Ctrl-C: {left}"
    assert code in (0, 2, 130, -signal.SIGINT), proc.tail()  # make: 2 when interrupted
    return time.monotonic() - sent


async def _greeted(proc: ManagedProcess, *, agent_lines: str) -> tuple[Caller, float]:
    line = await proc.wait_for_line(r"token endpoint:\s+POST (\S+)", timeout=60)
    match = re.search(r"POST (\S+)", line)
    assert match is not None
    url = match.group(1)
    await proc.wait_for_line(agent_lines, timeout=60)
    caller = Caller(url)
    start = time.monotonic()
    for _ in range(50):  # the token server may still be binding its port
        try:
            await caller.join(timeout=10)
            break
        except OSError:
            await asyncio.sleep(0.2)
        except Exception as e:
            if "ConnectError" not in type(e).__name__:
                raise
            await asyncio.sleep(0.2)
    await caller.wait_for_agent_audio(seconds=1.0, timeout=30)
    heard = caller.first_voiced_at()
    assert heard is not None
    return caller, heard - start


async def test_make_run() -> None:
    _need_default_ports(RUN_PORTS)
    async with GeminiLiveFake() as gemini, _command("run", _env(gemini)) as proc:
        caller, greeting = await _greeted(proc, agent_lines=r"agent.*registered worker")
        # the warm job process was ready before the call came
        lines = proc.lines
        warm = next(i for i, x in enumerate(lines) if "process initialized" in x)
        job = next(i for i, x in enumerate(lines) if "received job request" in x)
        assert warm < job, "no job process was warm when the first call arrived"
        pids = _tree(proc.proc.pid if proc.proc else 0)
        await caller.leave()
        stopped = await _ctrl_c(proc, pids)
        print(
            f"make run: greeting {greeting:.1f}s after join; Ctrl-C stopped {len(pids)} "
            f"processes in {stopped:.1f}s"
        )


async def test_make_cluster() -> None:
    redis_server_or_skip()
    _need_default_ports(CLUSTER_PORTS)
    async with GeminiLiveFake() as gemini, _command("cluster", _env(gemini)) as proc:
        await proc.wait_for_line(r"agent-a.*registered worker", timeout=60)
        caller, greeting = await _greeted(proc, agent_lines=r"agent-b.*registered worker")
        pids = _tree(proc.proc.pid if proc.proc else 0)
        assert any(n.startswith("redis-server") for n in pids.values()), pids
        assert sum(n.startswith("livekit-server") for n in pids.values()) == 2, pids
        await caller.leave()
        stopped = await _ctrl_c(proc, pids)
        print(
            f"make cluster: greeting {greeting:.1f}s after join; Ctrl-C stopped "
            f"{len(pids)} processes in {stopped:.1f}s"
        )

"""The real stack for end-to-end tests and benchmarks: livekit-server, the worker and the
token server as subprocesses, on free loopback ports.

Readiness is awaited on events (a log line, an HTTP answer), never on fixed sleeps, and
every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "testkey"
API_SECRET = "kaiwa-test-secret-0123456789abcdef0123456789"
ARTIFACTS = ROOT / "artifacts"
# A token server in bearer mode with this key signs kaiwa.role=staff for identity "clerk"
STAFF_KEY = "e2e-staff-key-5b1f0c"
STAFF_IDENTITY = "clerk"


def staff_tokens_env() -> dict[str, str]:
    """Token-server settings for staff calls (Caller(..., bearer=STAFF_KEY))."""
    return {
        "KAIWA_TOKEN_AUTH": "bearer",
        "KAIWA_TOKEN_BEARER_KEYS": f"{STAFF_KEY} identity={STAFF_IDENTITY} staff",
        "KAIWA_MAX_SESSIONS_PER_IDENTITY": "0",  # one clerk, many test calls in a row
    }


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_livekit_server() -> str | None:
    """The binary that scripts/ensure-livekit-server.sh would pick, without installing."""
    try:
        out = subprocess.run(
            [str(ROOT / "scripts" / "ensure-livekit-server.sh")],
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "KAIWA_NO_INSTALL": "1"},
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    path = out.stdout.strip()
    return path if out.returncode == 0 and path else None


class ManagedProcess:
    """A subprocess whose combined output is teed to a log file and watched for patterns."""

    def __init__(self, name: str, argv: list[str], *, env: dict[str, str], cwd: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.proc: asyncio.subprocess.Process | None = None
        self.lines: list[str] = []
        self._waiters: list[tuple[re.Pattern[str], asyncio.Future[str]]] = []
        self._reader: asyncio.Task[None] | None = None
        ARTIFACTS.mkdir(exist_ok=True)
        self.log_path = ARTIFACTS / f"{name}.log"

    async def start(self) -> None:
        self.lines.clear()
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            env=self.env,
            cwd=self.cwd,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        with self.log_path.open("a", encoding="utf-8") as log:
            log.write(f"\n===== {time.strftime('%H:%M:%S')} {' '.join(self.argv)}\n")
            async for raw in self.proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip()
                self.lines.append(line)
                log.write(line + "\n")
                log.flush()
                for pattern, fut in list(self._waiters):
                    if not fut.done() and pattern.search(line):
                        fut.set_result(line)
        for _, fut in self._waiters:
            if not fut.done():
                fut.set_exception(RuntimeError(f"{self.name} exited: {self.tail()}"))

    def tail(self, n: int = 30) -> str:
        return "\n".join(self.lines[-n:])

    async def wait_for_line(self, pattern: str, timeout: float, *, since: int = 0) -> str:
        """Wait for a matching output line (including lines already printed since `since`)."""
        rx = re.compile(pattern)
        for line in self.lines[since:]:
            if rx.search(line):
                return line
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        if self._reader is not None and self._reader.done():
            raise RuntimeError(f"{self.name} is not running: {self.tail()}")
        self._waiters.append((rx, fut))
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise TimeoutError(
                f"{self.name}: no line matching {pattern!r} within {timeout}s:\n{self.tail()}"
            ) from None
        finally:
            self._waiters.remove((rx, fut))

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def send_signal(self, sig: int) -> None:
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(sig)

    async def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        return await asyncio.wait_for(self.proc.wait(), timeout)

    async def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None:
            return
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                await self.proc.wait()
        else:
            # the group may still hold children (job processes) of a crashed parent
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5)


@dataclass
class LiveKitServer:
    binary: str
    port: int = field(default_factory=free_port)
    tcp_port: int = field(default_factory=free_port)
    udp_port: int = field(default_factory=lambda: free_port(socket.SOCK_DGRAM))
    # livekit.yaml's webhook goes to `make run`'s token server; tests send none unless asked
    webhook_url: str | None = None
    process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def config(self, workdir: Path) -> Path:
        """livekit.yaml from the repo, with this instance's ports (and webhook, if any)."""
        cfg = yaml.safe_load((ROOT / "livekit.yaml").read_text())
        cfg["port"] = self.port
        cfg["rtc"]["tcp_port"] = self.tcp_port
        cfg["rtc"]["udp_port"] = self.udp_port
        cfg.pop("webhook", None)
        if self.webhook_url:
            cfg["webhook"] = {"api_key": API_KEY, "urls": [self.webhook_url]}
        path = workdir / f"livekit-{self.port}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        return path

    async def start(self, workdir: Path) -> None:
        env = {**os.environ, "LIVEKIT_KEYS": f"{API_KEY}: {API_SECRET}"}
        self.process = ManagedProcess(
            "livekit-server",
            [self.binary, "--config", str(self.config(workdir))],
            env=env,
            cwd=workdir,
        )
        await self.process.start()
        await self.process.wait_for_line(r"starting LiveKit server", timeout=30)
        await wait_http(f"http://127.0.0.1:{self.port}/", timeout=15)

    async def stop(self) -> None:
        if self.process is not None:
            await self.process.stop()


async def wait_http(
    url: str, timeout: float, ok: Callable[[int], bool] = lambda s: s < 500
) -> None:
    """Poll an HTTP endpoint until it answers (bounded): the only readiness signal a server
    that prints nothing useful gives us."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2.0) as client:
        while True:
            try:
                r = await client.get(url)
                if ok(r.status_code):
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer within {timeout}s")
            await asyncio.sleep(0.1)


def worker_env(livekit: LiveKitServer, gemini_env: dict[str, str], **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KAIWA_", "LIVEKIT_", "GOOGLE_", "GEMINI_"))
    }
    env.update(
        {
            "LIVEKIT_URL": livekit.url,
            "LIVEKIT_API_KEY": API_KEY,
            "LIVEKIT_API_SECRET": API_SECRET,
            "GOOGLE_API_KEY": "fake-test-key",
            "KAIWA_WORKER_HTTP_PORT": "0",
            # LiveKit's load is machine-wide CPU; on a shared 2-core test box other
            # processes (browsers, other tests) would make the worker (and livekit-server,
            # which skips workers over 0.7) refuse jobs. Count sessions instead.
            "KAIWA_MAX_SESSIONS": "50",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(gemini_env)
    env.update(extra)
    return env


class Worker(ManagedProcess):
    """`python agent/agent.py start` as a real subprocess (cwd outside the repo so a
    developer's .env cannot leak into tests)."""

    def __init__(self, env: dict[str, str], cwd: Path, name: str = "worker") -> None:
        super().__init__(
            name, [sys.executable, str(ROOT / "agent" / "agent.py"), "start"], env=env, cwd=cwd
        )

    async def start_and_register(self, timeout: float = 60.0) -> None:
        await self.start()
        await self.wait_for_line(r"registered worker", timeout=timeout)


class TokenServer(ManagedProcess):
    def __init__(self, env: dict[str, str], cwd: Path, *, name: str = "token-server") -> None:
        self.port = free_port()
        super().__init__(
            name,
            [sys.executable, "-m", "token_server", "--host", "127.0.0.1", "--port", str(self.port)],
            env={**env, "PYTHONPATH": str(ROOT)},
            cwd=cwd,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start_ready(self, timeout: float = 30.0) -> None:
        await self.start()
        await wait_http(f"{self.url}/healthz", timeout=timeout, ok=lambda s: s == 200)


def have_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")

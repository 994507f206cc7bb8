"""The resumption handle outlives the job process, privately, per conversation (room AND
scope), and goes away with the call: the local directory backend and the Redis one."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.session_store import (
    HANDLE_TTL_S,
    DirectoryBackend,
    HandleStore,
    RedisBackend,
    conversation_key,
    redis_client,
    sweep_directory,
)
from tests.support.redis import RedisServer, running_redis
from tests.support.stack import free_port

# --------------------------------------------------------------------------- directory


def _glob(d: Path, pattern: str) -> list[Path]:
    return list(d.glob(pattern))


async def test_latest_handle_is_kept_privately_and_forgotten(tmp_path: Path) -> None:
    d = tmp_path / "sessions"
    store = HandleStore(DirectoryBackend(d), "kaiwa-room/../x", "AJ_first")
    assert await store.load() is None
    for h in ("h-1", "h-2", "h-3"):
        store.save(h)
    await store.flushed()
    # a new process (a new store for the same conversation) reads the newest handle
    again = HandleStore(DirectoryBackend(d), "kaiwa-room/../x", "AJ_first")
    assert await again.load() == "h-3"
    files = list(d.iterdir())
    assert len(files) == 1 and files[0].parent == d  # the room name can't escape
    assert files[0].name == conversation_key("kaiwa-room/../x", "AJ_first") + ".json"
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    await again.forget()
    assert await HandleStore(DirectoryBackend(d), "kaiwa-room/../x", "AJ_first").load() is None
    assert list(d.iterdir()) == []


async def test_keyed_by_room_and_scope(tmp_path: Path) -> None:
    backend = DirectoryBackend(tmp_path)
    first = HandleStore(backend, "room", "AJ_caller1")
    first.save("secret-handle")
    await first.flushed()
    # a later caller reusing the room name is a new conversation (a new first job id)
    assert await HandleStore(backend, "room", "AJ_caller2").load() is None
    assert await HandleStore(backend, "room2", "AJ_caller1").load() is None
    # names that a sanitiser would have mapped to the same file stay apart
    a, b = HandleStore(backend, "a/b", "s"), HandleStore(backend, "a_b", "s")
    a.save("ha")
    b.save("hb")
    await a.flushed()
    await b.flushed()
    assert (await a.load(), await b.load()) == ("ha", "hb")


async def test_file_is_0600_from_birth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, int, int]] = []
    real_open = os.open

    def spy(path: Any, flags: int, mode: int = 0o777, *a: Any, **kw: Any) -> int:
        calls.append((str(path), flags, mode))
        return real_open(path, flags, mode, *a, **kw)

    monkeypatch.setattr(os, "open", spy)
    old = os.umask(0)  # even with a permissive umask
    try:
        store = HandleStore(DirectoryBackend(tmp_path), "r", "s")
        store.save("h")
        await store.flushed()
    finally:
        os.umask(old)
    writes = [c for c in calls if c[0].startswith(str(tmp_path))]
    assert writes, calls
    for path, flags, mode in writes:
        assert path.endswith(".tmp")
        assert flags & os.O_EXCL and flags & os.O_CREAT
        assert mode == 0o600
    (f,) = _glob(tmp_path, "*.json")
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert not _glob(tmp_path, "*.tmp")


def test_unreadable_records_are_no_handle(tmp_path: Path) -> None:
    backend = DirectoryBackend(tmp_path)
    path = backend.path("r", "s")

    def record(room: str, at: float) -> str:
        return json.dumps({"room": room, "scope": "s", "handle": "h", "at": at})

    path.write_text("{not json")
    assert backend._read("r", "s") is None
    # a record for another conversation under this name (can't happen by hashing; still)
    path.write_text(record("other", time.time()))
    assert backend._read("r", "s") is None
    # older than Gemini's 2 h validity
    stale = time.time() - HANDLE_TTL_S - 5
    path.write_text(record("r", stale))
    assert backend._read("r", "s") is None
    path.write_text(record("r", time.time()))
    stored = backend._read("r", "s")
    assert stored is not None and stored.handle == "h"


class _SlowDirectory(DirectoryBackend):
    """Writes that take a while, in a thread, counting how many run at once."""

    def __init__(self, directory: Path, delay: float) -> None:
        super().__init__(directory)
        self.delay = delay
        self.running = 0
        self.max_running = 0
        self.written: list[str] = []
        self._lock = threading.Lock()

    def _write(self, room: str, scope: str, handle: str, owner: str) -> None:
        with self._lock:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        time.sleep(self.delay)
        super()._write(room, scope, handle, owner)
        with self._lock:
            self.running -= 1
            self.written.append(handle)


async def test_writes_are_serialised_latest_wins(tmp_path: Path) -> None:
    backend = _SlowDirectory(tmp_path, 0.05)
    store = HandleStore(backend, "r", "s")
    for i in range(20):
        store.save(f"h-{i}")
        await asyncio.sleep(0.01)
    await store.flushed()
    assert backend.max_running == 1
    assert backend.written[-1] == "h-19"
    assert len(backend.written) < 20  # intermediate handles were skipped, not queued
    assert await store.load() == "h-19"


async def test_forget_waits_for_the_write_in_flight(tmp_path: Path) -> None:
    backend = _SlowDirectory(tmp_path, 0.3)
    store = HandleStore(backend, "r", "s")
    store.save("h-1")
    await asyncio.sleep(0.05)  # the write is now running in its thread
    assert backend.running == 1
    store.save("h-2")  # queued behind it: must never be written
    await store.forget()
    await asyncio.sleep(0.5)  # anything still in flight would land by now
    assert _glob(tmp_path, "*.json") == []
    assert backend.written == ["h-1"]
    store.save("h-3")  # after the call ended: ignored
    await asyncio.sleep(0.1)
    assert _glob(tmp_path, "*.json") == []


def test_sweep_removes_only_expired_files(tmp_path: Path) -> None:
    old = time.time() - HANDLE_TTL_S - 60
    for name in ("old.json", ".old.1.tmp", "fresh.json", "notes.txt"):
        (tmp_path / name).write_text("{}")
    for name in ("old.json", ".old.1.tmp", "notes.txt"):
        os.utime(tmp_path / name, (old, old))
    assert sweep_directory(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh.json", "notes.txt"]
    assert sweep_directory(tmp_path / "missing") == 0


async def test_save_returns_at_once(tmp_path: Path) -> None:
    store = HandleStore(_SlowDirectory(tmp_path, 0.5), "r", "s")
    t0 = time.perf_counter()
    store.save("h")
    assert time.perf_counter() - t0 < 0.01
    await store.forget()


# --------------------------------------------------------------------------- redis


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Any]:
    client = redis_client(redis_server.url)
    yield client
    await client.flushdb()
    await client.aclose()


async def test_redis_keeps_the_latest_handle_with_ttl(
    redis: Any, redis_server: RedisServer
) -> None:
    store = HandleStore(RedisBackend(redis_client(redis_server.url)), "room", "AJ_1")
    for h in ("h-1", "h-2"):
        store.save(h)
    await store.flushed()
    key = RedisBackend.key("room", "AJ_1")
    ttl = await redis.ttl(key)
    assert HANDLE_TTL_S - 10 < ttl <= HANDLE_TTL_S
    # another process (another client) resumes from it; other conversations see nothing
    other = HandleStore(RedisBackend(redis_client(redis_server.url)), "room", "AJ_1")
    assert await other.load() == "h-2"
    for room, scope in (("room", "AJ_2"), ("room2", "AJ_1")):
        stranger = HandleStore(RedisBackend(redis_client(redis_server.url)), room, scope)
        assert await stranger.load() is None
        await stranger.forget()
    await other.forget()
    assert await redis.exists(key) == 0
    await store.forget()


async def test_redis_forget_waits_for_the_write_in_flight(redis: Any) -> None:
    class Slow(RedisBackend):
        async def write(self, room: str, scope: str, handle: str, owner: str) -> None:
            await asyncio.sleep(0.2)
            await super().write(room, scope, handle, owner)

    store = HandleStore(Slow(redis, owns_client=False), "r", "s")
    store.save("h-1")
    await asyncio.sleep(0.05)
    store.save("h-2")
    await store.forget()
    await asyncio.sleep(0.3)
    assert await redis.exists(RedisBackend.key("r", "s")) == 0


async def test_redis_down_costs_the_resume_not_the_call() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    store = HandleStore(RedisBackend(redis_client(url)), "r", "s")
    t0 = time.monotonic()
    store.save("h")  # no exception on the caller's path
    assert await store.load() is None
    await store.flushed()
    await store.forget()
    assert time.monotonic() - t0 < 10


def test_settings_choose_the_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.session_store import open_backend
    from agent.settings import Settings, SettingsError, load_settings

    monkeypatch.chdir(tmp_path)  # no .env
    for k in list(os.environ):
        if k.startswith("KAIWA_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("KAIWA_STATE_DIR", str(tmp_path / "s"))
    assert isinstance(open_backend(Settings()), DirectoryBackend)
    monkeypatch.setenv("KAIWA_STATE_URL", "redis://:pw-123@127.0.0.1:1/0")
    s = Settings()
    assert isinstance(open_backend(s), RedisBackend)
    assert "pw-123" not in repr(s)
    monkeypatch.setenv("KAIWA_STATE_URL", "http://:pw-123@example/")
    with pytest.raises(SettingsError, match="KAIWA_STATE_URL") as e:
        load_settings()
    assert "pw-123" not in str(e.value)


async def _old_job_ends_after_its_replacement(make: Any) -> None:
    old, new = HandleStore(make(), "r", "s"), HandleStore(make(), "r", "s")
    old.save("h-old")
    await old.flushed()
    assert await new.load() == "h-old"  # the replacement resumes from it
    new.save("h-new")
    await new.flushed()
    await old.forget()  # the old job's late, normal end
    assert await HandleStore(make(), "r", "s").load() == "h-new"
    await new.forget()
    assert await HandleStore(make(), "r", "s").load() is None
    # a replacement that ends before writing a handle of its own removes the one it took
    dead, quick = HandleStore(make(), "r", "s"), HandleStore(make(), "r", "s")
    dead.save("h-dead")
    await dead.flushed()
    assert await quick.load() == "h-dead"
    await quick.forget()
    assert await HandleStore(make(), "r", "s").load() is None
    # and a store that never read or wrote it leaves it alone
    dead.save("h-dead-2")  # (not closed: dead jobs don't call forget)
    await dead.flushed()
    await HandleStore(make(), "r", "s").forget()
    assert await HandleStore(make(), "r", "s").load() == "h-dead-2"


async def test_forget_removes_only_its_own_record(tmp_path: Path) -> None:
    await _old_job_ends_after_its_replacement(lambda: DirectoryBackend(tmp_path))


async def test_redis_forget_removes_only_its_own_record(redis_server: RedisServer) -> None:
    await _old_job_ends_after_its_replacement(lambda: RedisBackend(redis_client(redis_server.url)))

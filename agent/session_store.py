"""Where a call's Gemini resumption handle outlives its job process.

A job process that dies takes the live Gemini session with it; a worker re-dispatches the
room (agent/lifecycle.py), and the new job resumes the *same* Gemini conversation from the
last handle Gemini issued, so the caller doesn't have to start over.

A handle is keyed by the room AND the conversation's scope (the first job id of the
conversation, `lifecycle.call_scope`): a caller who reuses a room name later gets a new
scope, so it can never resume somebody else's conversation. Gemini honours a handle for
2 hours (HANDLE_TTL_S); nothing older is kept or read.

Two backends, chosen by settings:

* a local directory (`KAIWA_STATE_DIR`, the default): one 0600 file per conversation,
  written to a private temp file and renamed over the old one, off the event loop. It covers
  re-dispatch to a worker on the same host (the worker re-dispatches its own crashed jobs).
* Redis (`KAIWA_STATE_URL=redis://…` or `rediss://…`): one key per conversation with a
  2-hour TTL, through the asyncio client with short timeouts. Needed when a call may
  continue on another host (a cluster: agent/cluster.py).

Writes never block the audio path: `save()` only records the newest handle; one task per
store writes it (latest wins, one write at a time). `forget()` (the call ended normally)
stops further writes, waits for the one in flight, then removes the record, so a late
write can't bring it back; and only a record this job wrote itself, so an old job that
ends late (its agent removed from the room after its replacement took over) can't delete
the replacement's handle.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    from .settings import Settings

logger = logging.getLogger("kaiwa.session_store")

# Gemini Live honours a session resumption handle for 2 hours after the session ended.
HANDLE_TTL_S = 2 * 3600
# How long forget() waits for a write in flight before removing the record anyway.
_FORGET_WAIT_S = 5.0
# Redis round trips are bounded: a stalled Redis costs a resume, never the call.
REDIS_TIMEOUT_S = 2.0
REDIS_PREFIX = "kaiwa:"


def conversation_key(room: str, scope: str) -> str:
    """A fixed-size name for (room, scope): no path tricks, no collisions between rooms
    whose names differ only in characters a file name can't hold."""
    return hashlib.sha256(f"{room}\0{scope}".encode()).hexdigest()


def _record(room: str, scope: str, handle: str, owner: str) -> str:
    return json.dumps(
        {"room": room, "scope": scope, "handle": handle, "at": time.time(), "owner": owner}
    )


def _owner(raw: str | bytes) -> str | None:
    try:
        owner = json.loads(raw).get("owner")
    except (ValueError, AttributeError):
        return None
    return owner if isinstance(owner, str) else None


class Stored(NamedTuple):
    handle: str
    owner: str  # the HandleStore that wrote it


def _parse(raw: str | bytes | None, room: str, scope: str, now: float) -> Stored | None:
    """The handle in a stored record, if it is for this conversation and still valid."""
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        handle, at, owner = data["handle"], float(data["at"]), str(data.get("owner", ""))
        same = data["room"] == room and data["scope"] == scope
    except (ValueError, KeyError, TypeError):
        return None
    if not same or not isinstance(handle, str) or not handle or now - at > HANDLE_TTL_S:
        return None
    return Stored(handle, owner)


class Backend(Protocol):
    async def read(self, room: str, scope: str) -> Stored | None: ...
    async def write(self, room: str, scope: str, handle: str, owner: str) -> None: ...
    async def delete(self, room: str, scope: str, owners: Sequence[str]) -> None: ...
    async def aclose(self) -> None: ...


# --------------------------------------------------------------------------- directory


class DirectoryBackend:
    """One file per conversation under `directory` (created 0700), each 0600 from birth."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, room: str, scope: str) -> Path:
        return self.directory / f"{conversation_key(room, scope)}.json"

    async def read(self, room: str, scope: str) -> Stored | None:
        return await asyncio.to_thread(self._read, room, scope)

    def _read(self, room: str, scope: str) -> Stored | None:
        try:
            raw = self.path(room, scope).read_text(encoding="utf-8")
        except OSError:
            return None
        return _parse(raw, room, scope, time.time())

    async def write(self, room: str, scope: str, handle: str, owner: str) -> None:
        await asyncio.to_thread(self._write, room, scope, handle, owner)

    def _write(self, room: str, scope: str, handle: str, owner: str) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        final = self.path(room, scope)
        # A private name of our own, created exclusively with mode 0600: the handle is never
        # readable by others, not even between create and chmod.
        tmp = final.with_name(f".{final.stem}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(_record(room, scope, handle, owner))
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    async def delete(self, room: str, scope: str, owners: Sequence[str]) -> None:
        def unlink() -> None:
            path = self.path(room, scope)
            try:
                if _owner(path.read_bytes()) in owners:
                    path.unlink()
            except FileNotFoundError:
                pass

        await asyncio.to_thread(unlink)

    async def aclose(self) -> None:
        return None


def sweep_directory(directory: Path, max_age_s: float = HANDLE_TTL_S) -> int:
    """Remove handle files (and stray temp files) older than Gemini's handle validity: the
    records of calls whose job died and was never replaced. One scandir, no reads. Returns
    how many were removed. Blocking: call it in a thread."""
    removed = 0
    cutoff = time.time() - max_age_s
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if not entry.name.endswith((".json", ".tmp")):
            continue
        try:
            if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                os.unlink(entry.path)
                removed += 1
        except OSError:
            continue
    return removed


# --------------------------------------------------------------------------- redis


def redis_client(url: str) -> Any:
    """An asyncio Redis client with bounded timeouts (redis:// rediss:// unix://)."""
    import redis.asyncio as aioredis

    return aioredis.from_url(
        url,
        socket_timeout=REDIS_TIMEOUT_S,
        socket_connect_timeout=REDIS_TIMEOUT_S,
        health_check_interval=30,
    )


# Delete the record only if one of the given owners wrote it (atomic: one script).
_DELETE_IF_OWNER = """
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local owner = cjson.decode(v)['owner']
for _, o in ipairs(ARGV) do
  if owner == o then return redis.call('DEL', KEYS[1]) end
end
return 0
"""


class RedisBackend:
    """One key per conversation, `kaiwa:handle:<sha256(room, scope)>`, expiring after 2 h."""

    def __init__(self, client: Any, *, owns_client: bool = True) -> None:
        self._client = client
        self._owns = owns_client

    @staticmethod
    def key(room: str, scope: str) -> str:
        return f"{REDIS_PREFIX}handle:{conversation_key(room, scope)}"

    async def read(self, room: str, scope: str) -> Stored | None:
        raw = await self._client.get(self.key(room, scope))
        return _parse(raw, room, scope, time.time())

    async def write(self, room: str, scope: str, handle: str, owner: str) -> None:
        record = _record(room, scope, handle, owner)
        await self._client.set(self.key(room, scope), record, ex=HANDLE_TTL_S)

    async def delete(self, room: str, scope: str, owners: Sequence[str]) -> None:
        await self._client.eval(_DELETE_IF_OWNER, 1, self.key(room, scope), *owners)

    async def aclose(self) -> None:
        if self._owns:
            await self._client.aclose()


# --------------------------------------------------------------------------- one call


class HandleStore:
    """The resumption handle of one conversation (room + scope), for one job."""

    def __init__(self, backend: Backend, room: str, scope: str) -> None:
        self.backend = backend
        self.room = room
        self.scope = scope
        self._pending: asyncio.Task[None] | None = None
        self._latest: str | None = None
        self._closed = False
        self._failing = False
        # whose records these are: forget() removes only its own, or the one it resumed from
        self.owner = os.urandom(8).hex()
        self._adopted: str | None = None

    async def load(self) -> str | None:
        """The conversation's last handle, or None (none kept, expired, or unreachable).
        The record it came from becomes this store's to remove when the call ends."""
        try:
            stored = await asyncio.wait_for(
                self.backend.read(self.room, self.scope), REDIS_TIMEOUT_S * 2
            )
        except Exception as e:
            logger.warning("could not read the resumption handle: %s", type(e).__name__)
            return None
        if stored is None:
            return None
        self._adopted = stored.owner
        return stored.handle

    def _owners(self) -> list[str]:
        return [self.owner] if self._adopted is None else [self.owner, self._adopted]

    def save(self, handle: str) -> None:
        """Remember the newest handle; written by one task, one write at a time, latest wins.
        Called from the Gemini session's receive path: returns at once."""
        if self._closed:
            return
        self._latest = handle
        if self._pending is None or self._pending.done():
            self._pending = asyncio.create_task(self._flush(), name="kaiwa-handle-write")

    async def _flush(self) -> None:
        while self._latest is not None and not self._closed:
            handle, self._latest = self._latest, None
            try:
                # bounded by the backend: Redis socket timeouts; a local write
                await self.backend.write(self.room, self.scope, handle, self.owner)
            except Exception as e:
                if not self._failing:  # one line per outage, not one per handle
                    logger.warning("could not keep the resumption handle: %s", e)
                self._failing = True
            else:
                if self._failing:
                    logger.info("resumption handle kept again")
                self._failing = False

    async def flushed(self) -> None:
        """Wait until the newest handle is written (tests, and forget())."""
        while self._pending is not None and not self._pending.done():
            await asyncio.shield(self._pending)

    async def forget(self) -> None:
        """The call ended normally: no more writes, then remove the record and close."""
        self._closed = True
        self._latest = None
        if self._pending is not None and not self._pending.done():
            # a write in flight (possibly in a thread) finishes before the removal, so
            # it can't recreate the record afterwards
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._pending), _FORGET_WAIT_S)
        try:
            await asyncio.wait_for(
                self.backend.delete(self.room, self.scope, self._owners()), _FORGET_WAIT_S
            )
        except Exception as e:
            logger.warning("could not remove the resumption handle: %s", type(e).__name__)
        with contextlib.suppress(Exception):
            await self.backend.aclose()


def open_backend(settings: Settings) -> Backend:
    url = settings.state_url.get_secret_value() if settings.state_url is not None else None
    if url:
        return RedisBackend(redis_client(url))
    return DirectoryBackend(settings.state_dir)


def open_handle_store(settings: Settings, room: str, scope: str) -> HandleStore:
    """The handle store of one conversation, on the backend the settings choose."""
    return HandleStore(open_backend(settings), room, scope)

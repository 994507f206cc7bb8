"""Where a call's Gemini resumption handle outlives its job process.

A job process that dies takes the live Gemini session with it; the worker re-dispatches
the room (agent/lifecycle.py), and the new job resumes the *same* Gemini conversation
from the last handle Gemini issued, so the caller doesn't have to start over. Handles sit
in small files under `KAIWA_STATE_DIR` (one per room), written off the event loop and
removed when the call ends normally. The directory is local: this covers re-dispatch to a
worker on the same host; a multi-host deployment would keep them in shared storage.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import time
from pathlib import Path

logger = logging.getLogger("kaiwa.session_store")

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


class HandleStore:
    def __init__(self, directory: Path, room: str) -> None:
        self._path = directory / f"{_SAFE.sub('_', room)}.json"
        self._pending: asyncio.Task[None] | None = None
        self._latest: str | None = None

    def load(self) -> str | None:
        try:
            data = json.loads(self._path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        handle = data.get("handle")
        return handle if isinstance(handle, str) and handle else None

    def save(self, handle: str) -> None:
        """Remember the newest handle; the write happens in a thread, latest wins."""
        self._latest = handle
        if self._pending is None or self._pending.done():
            self._pending = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        while self._latest is not None:
            handle, self._latest = self._latest, None
            try:
                await asyncio.to_thread(self._write, handle)
            except OSError as e:
                logger.warning("could not keep the resumption handle: %s", e)

    def _write(self, handle: str) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"handle": handle, "at": time.time()}), encoding="utf-8")
        os.chmod(tmp, 0o600)  # a handle resumes the conversation: keep it private
        tmp.replace(self._path)

    async def forget(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
        with contextlib.suppress(OSError):
            await asyncio.to_thread(self._path.unlink)

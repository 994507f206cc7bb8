"""The resumption handle outlives the job process, privately, and goes away with the call."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

from agent.session_store import HandleStore


async def test_latest_handle_is_kept_and_forgotten(tmp_path: Path) -> None:
    store = HandleStore(tmp_path, "kaiwa-room/../x")
    assert store.load() is None
    for h in ("h-1", "h-2", "h-3"):
        store.save(h)
    await asyncio.wait_for(store._pending, 5)  # type: ignore[arg-type]
    # a new process (a new store for the same room) reads the newest handle
    again = HandleStore(tmp_path, "kaiwa-room/../x")
    assert again.load() == "h-3"
    files = list(tmp_path.iterdir())  # noqa: ASYNC240 (a test)
    assert len(files) == 1 and files[0].parent == tmp_path  # the room name can't escape
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    await again.forget()
    assert HandleStore(tmp_path, "kaiwa-room/../x").load() is None


def test_corrupt_file_is_no_handle(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text("{not json")
    assert HandleStore(tmp_path, "r").load() is None

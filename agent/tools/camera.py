"""Attach a photo of the device by voice: one frame of the caller's camera, stored on a case.

"Take a photo of the drive and attach it to R-1042": the clerk holds the device up to the
camera and the agent stores the current frame as a PNG attachment, with history, exactly
like the console's by-hand upload. Staff only, like the other case operations. The frame is
read from the participant's camera track with a short-lived `rtc.VideoStream` (public
API); the framework's own video input only samples frames for Gemini and keeps none.

PNG is encoded with zlib and numpy in a worker thread: no imaging dependency, and nothing
heavy on the event loop (the audio path shares it).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import struct
import zlib
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from livekit import rtc
from livekit.agents import RunContext, ToolError, get_job_context

from .context import desk_call, services, state
from .desk import case_for
from .runtime import kaiwa_tool

FRAME_TIMEOUT_S = 3.0  # a camera being turned on now, and its first frame
MAX_SIDE = 1920  # larger frames are sampled down (every n-th pixel): a photo, not a scan
NO_CAMERA = (
    "There is no camera picture from the caller right now, so nothing was attached. Ask "
    "them to turn on their camera and hold the device up to it, then try again."
)


def png(rgb: np.ndarray) -> bytes:
    """An (height, width, 3) uint8 picture as PNG (filter 0 on every row)."""
    height, width, _ = rgb.shape
    rows = np.zeros((height, 1 + width * 3), dtype=np.uint8)  # a 0 filter byte per row
    rows[:, 1:] = rgb.reshape(height, width * 3)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
        + chunk(b"IEND", b"")
    )


def frame_png(frame: rtc.VideoFrame) -> bytes:
    """The frame as PNG, at most MAX_SIDE pixels on its long side."""
    rgba = (
        frame if frame.type == rtc.VideoBufferType.RGBA else frame.convert(rtc.VideoBufferType.RGBA)
    )
    pixels = np.frombuffer(rgba.data, dtype=np.uint8).reshape(rgba.height, rgba.width, 4)
    step = max(1, -(-max(rgba.width, rgba.height) // MAX_SIDE))
    return png(np.ascontiguousarray(pixels[::step, ::step, :3]))


def camera_track(room: rtc.Room, identity: str) -> rtc.RemoteTrackPublication | None:
    """The participant's camera (or, failing that, any video they publish)."""
    participant = room.remote_participants.get(identity)
    if participant is None:
        return None
    videos = [
        p
        for p in participant.track_publications.values()
        if p.kind == rtc.TrackKind.KIND_VIDEO and not p.muted
    ]
    videos.sort(key=lambda p: p.source != rtc.TrackSource.SOURCE_CAMERA)
    return videos[0] if videos else None


async def _room_event(
    room: rtc.Room,
    event: Literal["track_published", "track_subscribed"],
    ready: Callable[[], bool],
) -> None:
    """Wait until `ready()` holds, re-checked on each `event` of the room."""
    changed = asyncio.Event()

    def on_event(*_: Any) -> None:
        changed.set()

    room.on(event, on_event)
    try:
        while not ready():
            changed.clear()
            await changed.wait()
    finally:
        room.off(event, on_event)


async def camera_frame(room: rtc.Room, identity: str) -> rtc.VideoFrame:
    """The next frame of the participant's camera. A camera turned on a moment ago may not
    be announced to the agent yet, so its publication is awaited too (the caller bounds it)."""
    await _room_event(room, "track_published", lambda: camera_track(room, identity) is not None)
    pub = camera_track(room, identity)
    assert pub is not None
    if pub.track is None:
        pub.set_subscribed(True)
        await _room_event(room, "track_subscribed", lambda: pub.track is not None)
    assert pub.track is not None
    stream = rtc.VideoStream(pub.track, format=rtc.VideoBufferType.RGBA)
    try:
        async for event in stream:
            return event.frame
        raise ToolError(NO_CAMERA)
    finally:
        await stream.aclose()


@kaiwa_tool(timeout_s=15)
async def attach_camera_photo(ctx: RunContext, case_id: str) -> dict[str, Any]:
    """Take a photo with the caller's camera now and attach it to a case (for example the
    damaged device they hold up). Ask them to hold it steady in view first.

    Args:
        case_id: The case number, e.g. R-1042.
    """
    case = await case_for(ctx, case_id)
    room = get_job_context().room
    try:
        async with asyncio.timeout(FRAME_TIMEOUT_S):
            frame = await camera_frame(room, state(ctx).access.identity)
    except TimeoutError:
        raise ToolError(NO_CAMERA) from None
    data = await asyncio.to_thread(frame_png, frame)
    name = f"camera-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}.png"
    done = await desk_call(services(ctx).desk.attach_file, case.id, name=name, data=data)
    attached = done.attachments[-1] if done.attachments else None
    return {
        "id": done.id,
        "attached": name,
        "size": f"{frame.width}x{frame.height}",
        "bytes": attached.size if attached is not None else len(data),
        "saved": True,
    }


TOOLS = [attach_camera_photo]

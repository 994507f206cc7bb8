"""A camera frame becomes a PNG the desk accepts (agent/tools/camera.py)."""

from __future__ import annotations

import struct
import zlib

from livekit import rtc

from agent.tools.camera import MAX_SIDE, frame_png
from desk import validate


def decode(data: bytes) -> tuple[int, int, bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height, depth, color = struct.unpack(">IIBB", data[16:26])
    assert (depth, color) == (8, 2)  # 8-bit RGB
    idat = data[data.index(b"IDAT") + 4 : data.index(b"IEND") - 8]
    return width, height, zlib.decompress(idat)


def test_a_frame_is_a_png_of_its_pixels() -> None:
    width, height = 4, 3
    rgba = b"".join(bytes([10 * x, 20 * y, 7, 255]) for y in range(height) for x in range(width))
    data = frame_png(rtc.VideoFrame(width, height, rtc.VideoBufferType.RGBA, rgba))
    w, h, raw = decode(data)
    assert (w, h) == (width, height)
    stride = 1 + 3 * width
    assert len(raw) == stride * height
    assert raw[stride * 2] == 0  # filter byte of row 2
    assert raw[stride * 2 + 1 + 3 * 3 : stride * 2 + 1 + 3 * 4] == bytes([30, 40, 7])
    assert validate.attachment(data)[1] == "image/png"


def test_a_large_frame_is_sampled_down() -> None:
    width, height = MAX_SIDE * 2 + 2, 10
    rgba = bytes([200, 100, 50, 255]) * (width * height)
    w, h, raw = decode(frame_png(rtc.VideoFrame(width, height, rtc.VideoBufferType.RGBA, rgba)))
    assert w <= MAX_SIDE and h == 4  # every 3rd pixel: 10 rows -> 4
    assert raw[1:4] == bytes([200, 100, 50])

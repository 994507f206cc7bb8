"""Tools end to end: the Gemini fake calls kaiwa's tools through the real worker (real
livekit-server, a real WebRTC caller); we check what users would observe — rows in the
SQLite file, the tool responses Gemini receives, and the RPC payloads the caller's screen
gets. MCP and OpenAPI tools come from small real servers started here.

This module runs its own worker (agent name `kaiwa-tools`) with a short tool timeout,
a very slow lab tool and the MCP/OpenAPI backends, plus its own token server, so the
shared worker keeps its defaults.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import struct
import time
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from livekit import rtc

from tests.fakes.gemini_live import FakeConversation, GeminiLiveFake
from tests.support.caller import Caller, load_wav
from tests.support.responses import tool_output
from tests.support.stack import (
    STAFF_KEY,
    LiveKitServer,
    TokenServer,
    Worker,
    staff_tokens_env,
    worker_env,
)
from tests.support.tool_backends import (
    API_KEY,
    Served,
    build_openapi_app,
    mcp_http_app,
    served,
)

AGENT = "kaiwa-tools"
SPEECH = Path(__file__).resolve().parents[1] / "fixtures" / "speech_en.wav"
TOOL_TIMEOUT_S = 3.0


@pytest.fixture(scope="module")
async def backends() -> AsyncIterator[tuple[Served, Served]]:
    async with served(mcp_http_app()) as mcp, served(build_openapi_app()) as api:
        yield mcp, api


@pytest.fixture(scope="module")
def tools_db(stack_dir: Path) -> Path:
    return stack_dir / "tools-desk.sqlite3"


@pytest.fixture(scope="module")
async def tools_worker(
    livekit: LiveKitServer,
    gemini: GeminiLiveFake,
    stack_dir: Path,
    tools_db: Path,
    backends: tuple[Served, Served],
) -> AsyncIterator[Worker]:
    mcp, api = backends
    env = worker_env(
        livekit,
        gemini.env(),
        KAIWA_AGENT_NAME=AGENT,
        KAIWA_DESK_DB=str(tools_db),
        KAIWA_GREETING="false",
        KAIWA_TOOL_TIMEOUT_S=str(TOOL_TIMEOUT_S),
        KAIWA_LAB_DELAY_S="60",
        KAIWA_MCP_SERVERS=json.dumps(
            [{"name": "parts", "url": f"{mcp.url}/mcp", "allowed_tools": ["part_stock"]}]
        ),
        KAIWA_OPENAPI_SPEC=f"{api.url}/openapi.json",
        KAIWA_OPENAPI_BASE_URL=api.url,
        KAIWA_OPENAPI_AUTH_HEADER=f"X-Api-Key: {API_KEY}",
        KAIWA_OPENAPI_OPERATIONS="get_part_price,book_courier",
        KAIWA_GOOGLE_SEARCH="true",
        KAIWA_CODE_EXECUTION="true",
    )
    proc = Worker(env, stack_dir, name="worker-tools")
    await proc.start_and_register()
    yield proc
    await proc.stop()


@pytest.fixture(scope="module")
async def tools_token_server(livekit: LiveKitServer, stack_dir: Path) -> AsyncIterator[TokenServer]:
    # staff calls: these tests operate the whole desk (caller mode: test_caller_mode.py)
    env = worker_env(livekit, {}, KAIWA_AGENT_NAME=AGENT, **staff_tokens_env())
    proc = TokenServer(env, stack_dir)
    await proc.start_ready()
    yield proc
    await proc.stop()


class Screen:
    """The caller's screen: records the kaiwa.ui.* RPC calls it receives."""

    def __init__(self, caller: Caller) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.changed = asyncio.Event()
        for method in ("kaiwa.ui.show_case", "kaiwa.ui.status_changed", "kaiwa.ui.clear"):
            caller.room.local_participant.register_rpc_method(method, self._handler(method))

    def _handler(self, method: str) -> Any:
        async def handle(data: rtc.RpcInvocationData) -> str:
            self.calls.append((method, json.loads(data.payload)))
            self.changed.set()
            return "ok"

        return handle

    async def wait_for(self, method: str, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for m, payload in self.calls:
                if m == method and all(_get(payload, k) == v for k, v in match.items()):
                    return payload
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {method} {match} within {timeout}s: {self.calls}")
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), remaining)
            except TimeoutError:
                pass


def _get(payload: dict[str, Any], dotted: str) -> Any:
    node: Any = payload
    for part in dotted.split("__"):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def case_row(db: Path, case_id: str) -> tuple[str, int | None] | None:
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT status, quote_yen FROM cases WHERE num = ?", (int(case_id.split("-")[1]),)
        ).fetchone()
    return None if row is None else (row[0], row[1])


claimed: list[FakeConversation] = []  # conversations of earlier tests in this module


@pytest.fixture
async def session(
    tools_token_server: TokenServer, tools_worker: Worker, gemini: GeminiLiveFake
) -> AsyncIterator[tuple[Caller, Screen, FakeConversation]]:
    caller = Caller(f"{tools_token_server.url}/token", bearer=STAFF_KEY)
    await caller.join()
    screen = Screen(caller)
    await caller.wait_for_agent(timeout=30)
    conv = await gemini.wait_for_conversation(
        lambda c: "part_stock" in c.tool_names and c not in claimed, timeout=30
    )
    claimed.append(conv)
    conv.auto = False
    yield caller, screen, conv
    await caller.leave()


async def test_desk_tools_through_the_fake(
    session: tuple[Caller, Screen, FakeConversation], tools_db: Path
) -> None:
    _, screen, conv = session

    # create_case with arguments → the case exists in the SQLite file
    created = tool_output(
        await conv.call_tool(
            "create_case",
            {"customer_name": "Sato Hanako", "device_type": "SSD", "symptom": "not detected",
             "phone": "03-1234-5678"},
            timeout=15,
        )
    )  # fmt: skip
    case_id = created["id"]
    assert case_row(tools_db, case_id) == ("received", None)
    # ...and the caller's screen was shown the new case
    shown = await screen.wait_for("kaiwa.ui.show_case", case__id=case_id)
    assert shown["case"]["customer_name"] == "Sato Hanako"

    # get_case (spoken form of the id) → the case comes back in the tool response
    started = time.monotonic()
    got = tool_output(await conv.call_tool("get_case", {"case_id": case_id.replace("-", " ")}))
    round_trip = time.monotonic() - started
    assert got["id"] == case_id and got["symptom"] == "not detected"
    print(f"get_case round trip through the worker: {round_trip * 1000:.0f} ms")

    # an invalid argument → an error response that explains the problem
    bad = await conv.call_tool(
        "create_case", {"customer_name": "Sato", "device_type": "toaster", "symptom": "x"}
    )
    assert "error" in bad and "device type 'toaster'" in bad["error"], bad

    # update_status → the screen highlights the change
    moved = tool_output(
        await conv.call_tool("update_status", {"case_id": case_id, "status": "diagnosing"})
    )
    assert moved["status"] == "diagnosing"
    change = await screen.wait_for("kaiwa.ui.status_changed", case_id=case_id)
    assert change == {"case_id": case_id, "from": "received", "to": "diagnosing"}
    for rec in conv.tool_calls.values():
        r = next((x for x in conv.tool_responses if x.id == rec.id), None)
        if r is not None:
            print(f"TIMING {rec.name}: {(r.at - rec.sent_at) * 1000:.0f} ms")


async def test_cancel_changes_nothing_until_the_caller_confirms(
    session: tuple[Caller, Screen, FakeConversation], tools_db: Path
) -> None:
    _, _, conv = session
    created = tool_output(
        await conv.call_tool(
            "create_case", {"customer_name": "Ito Ken", "device_type": "HDD", "symptom": "clicks"}
        )
    )
    case_id = created["id"]

    proposal = tool_output(
        await conv.call_tool("cancel_case", {"case_id": case_id, "reason": "found a backup"})
    )
    assert proposal["needs_confirmation"] is True and case_id in proposal["summary"]
    assert case_row(tools_db, case_id) == ("received", None)

    # The model confirms on its own, before the caller said anything: refused, unchanged.
    early = await conv.call_tool("confirm_action", {"confirmation_id": proposal["confirmation_id"]})
    assert "not said yes" in early.get("error", ""), early
    assert case_row(tools_db, case_id) == ("received", None)

    # The caller answers after hearing the summary (kaiwa's gate sees them speak), and
    # Gemini's transcript of it arrives.
    caller, _, _ = session
    await caller.say_and_wait(load_wav(SPEECH))
    await conv.wait_for_user_turn_end(timeout=15)
    await conv.speak(
        text="Cancelling it now.", seconds=0.5, input_transcript="Yes, please cancel it."
    )
    # A generic / invented id after the caller's yes: refused, unchanged.
    forged = await conv.call_tool("confirm_action", {"confirmation_id": "confirmed"})
    assert "no pending action" in forged.get("error", ""), forged
    assert case_row(tools_db, case_id) == ("received", None)

    # The bound id after the caller's yes: performed.
    done = tool_output(
        await conv.call_tool("confirm_action", {"confirmation_id": proposal["confirmation_id"]})
    )
    assert done["status"] == "cancelled"
    assert case_row(tools_db, case_id) == ("cancelled", None)


async def test_screen_tools_reach_the_callers_rpc_handlers(
    session: tuple[Caller, Screen, FakeConversation],
) -> None:
    _, screen, conv = session
    created = tool_output(
        await conv.call_tool(
            "create_case", {"customer_name": "Mori Aki", "device_type": "SD card", "symptom": "wet"}
        )
    )
    screen.calls.clear()
    shown = tool_output(await conv.call_tool("show_case", {"case_id": created["id"]}))
    assert shown == {"id": created["id"], "shown": True}
    payload = await screen.wait_for("kaiwa.ui.show_case", case__id=created["id"])
    assert payload["case"]["device_type"] == "SD card"
    assert [h["action"] for h in payload["case"]["history"]] == ["created"]

    assert tool_output(await conv.call_tool("clear_screen", {})) == {"cleared": True}
    assert await screen.wait_for("kaiwa.ui.clear") == {}


async def test_slow_tool_times_out_with_a_spoken_error(
    session: tuple[Caller, Screen, FakeConversation],
) -> None:
    _, _, conv = session
    created = tool_output(
        await conv.call_tool(
            "create_case", {"customer_name": "Abe Jun", "device_type": "phone", "symptom": "x"}
        )
    )
    call_id = await conv.send_tool_call("check_lab_progress", {"case_id": created["id"]})
    sent_at = conv.tool_calls[call_id].sent_at
    response = await conv.wait_for_tool_response(call_id, timeout=TOOL_TIMEOUT_S + 10)
    arrived_at = next(r.at for r in conv.tool_responses if r.id == call_id)
    assert "took longer than 3 seconds" in response.get("error", ""), response
    assert arrived_at - sent_at <= TOOL_TIMEOUT_S + 1.0, arrived_at - sent_at


async def test_mcp_openapi_and_builtin_tools_through_the_fake(
    session: tuple[Caller, Screen, FakeConversation],
) -> None:
    _, _, conv = session
    names = set(conv.tool_names)
    assert {"part_stock", "get_part_price", "book_courier", "create_case"} <= names
    assert not {"secret_admin_tool", "wipe_everything"} & names  # not allow-listed

    # Gemini's built-ins are declared in the same setup message.
    setup_tools = json.dumps(conv.setup)
    assert "googleSearch" in setup_tools or "google_search" in setup_tools, setup_tools[:500]
    assert "codeExecution" in setup_tools or "code_execution" in setup_tools

    stock = await conv.call_tool("part_stock", {"part_no": "PCB-7200"}, timeout=15)
    assert "3 units of PCB-7200" in json.dumps(stock), stock

    price = tool_output(await conv.call_tool("get_part_price", {"part_no": "HEAD-3.5"}, timeout=15))
    assert price == {"part_no": "HEAD-3.5", "price": 42000, "currency": "JPY"}
    missing = await conv.call_tool("get_part_price", {"part_no": "NOPE"}, timeout=15)
    assert "found nothing" in missing.get("error", ""), missing


async def test_a_photo_from_the_callers_camera_is_attached_by_voice(
    session: tuple[Caller, Screen, FakeConversation], tools_db: Path
) -> None:
    """'Take a photo of the drive and attach it': one camera frame, stored as a PNG on the
    case with history. Without a camera the model gets a sentence and nothing is stored."""
    caller, _, conv = session
    created = tool_output(
        await conv.call_tool(
            "create_case",
            {"customer_name": "Mori Ken", "device_type": "HDD", "symptom": "dropped"},
            timeout=15,
        )
    )
    case_id = created["id"]

    def attachments() -> list[tuple[str, str, bytes]]:
        with sqlite3.connect(tools_db) as conn:
            num = int(case_id.split("-")[1])
            rows = conn.execute(
                "SELECT name, content_type, data FROM attachments WHERE case_num = ?", (num,)
            ).fetchall()
        return [(r[0], r[1], bytes(r[2])) for r in rows]

    no_camera = await conv.call_tool("attach_camera_photo", {"case_id": case_id}, timeout=15)
    assert "no camera picture" in str(no_camera.get("error", no_camera)), no_camera
    assert attachments() == []

    # the caller turns on a camera showing an orange picture
    width, height = 320, 240
    source = rtc.VideoSource(width, height)
    track = rtc.LocalVideoTrack.create_video_track("camera", source)
    opts = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA)
    await caller.room.local_participant.publish_track(track, opts)
    rgba = bytes([255, 128, 0, 255]) * (width * height)
    frame = rtc.VideoFrame(width, height, rtc.VideoBufferType.RGBA, rgba)
    stop = asyncio.Event()

    async def film() -> None:
        while not stop.is_set():
            source.capture_frame(frame)
            await asyncio.sleep(1 / 15)  # pacing: a 15 fps camera

    filming = asyncio.create_task(film())
    try:
        done = tool_output(
            await conv.call_tool("attach_camera_photo", {"case_id": case_id}, timeout=20)
        )
    finally:
        stop.set()
        await filming
    assert done["saved"] is True and done["size"] == f"{width}x{height}", done
    # and the camera reached Gemini too, as JPEG frames (the plugin needs Pillow for that)
    seen = await conv.fake.wait_until(
        lambda: conv.video_frames or None, timeout=10, what="a camera frame at Gemini"
    )
    assert seen[0].mime_type == "image/jpeg" and seen[0].size > 0, seen[0]
    ((name, content_type, data),) = attachments()
    assert name == done["attached"] and content_type == "image/png"
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", data[16:24])
    assert (w, h) == (width, height)
    pixels = zlib.decompress(data[data.index(b"IDAT") + 4 : data.index(b"IEND") - 8])
    r, g, b = pixels[1 + 3 * (width // 2) : 4 + 3 * (width // 2)]  # row 0, middle pixel
    assert r > 200 and 80 < g < 180 and b < 60, (r, g, b)  # orange, after the video codec

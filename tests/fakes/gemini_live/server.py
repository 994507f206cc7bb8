"""The TLS WebSocket server that impersonates generativelanguage.googleapis.com."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import shutil
import ssl
import tempfile
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import certifi
import trustme
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State

from .audio import DEFAULT_VOICED_RMS
from .conversation import (
    REASON_INTERNAL,
    REASON_INVALID_ARGUMENT,
    FakeConnection,
    FakeConversation,
    ProtocolViolation,
    Signal,
)
from .records import JsonDict, ProtocolErrorKind, ProtocolErrorRecord, SetupInfo
from .script import AutoScript

log = logging.getLogger("tests.fakes.gemini_live")

T = TypeVar("T")

_PATH_RE = re.compile(
    r"^/ws/google\.ai\.generativelanguage\.(?P<version>v\w+)\.GenerativeService\."
    r"(?P<method>BidiGenerateContent(?:Constrained)?)$"
)
# Close reasons of Google's frontend for auth failures (public bug reports; not verifiable here)
REASON_NO_KEY = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)
REASON_BAD_KEY = "API key not valid. Please pass a valid API key."


@dataclass
class _SetupFault:
    code: int
    reason: str


def _api_key(path: str, headers: dict[str, str]) -> str | None:
    if key := headers.get("x-goog-api-key"):
        return key
    if keys := parse_qs(urlsplit(path).query).get("key"):
        return keys[0]
    auth = headers.get("authorization", "")
    for prefix in ("Token ", "Bearer "):  # ephemeral tokens / OAuth
        if auth.startswith(prefix):
            return auth[len(prefix) :]
    return None


class GeminiLiveFake:
    """A protocol-faithful fake of the Gemini Live `BidiGenerateContent` WebSocket.

    Point google-genai at it with `fake.env()` (GOOGLE_GEMINI_BASE_URL + SSL_CERT_FILE);
    the SDK turns the http:// base URL into wss://, so the fake serves TLS with a throwaway
    trustme CA. See tests/fakes/README.md.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        auto: bool = True,
        *,
        binary_frames: bool = True,
        api_keys: Collection[str] | None = None,
        ca_dir: str | Path | None = None,
        voiced_threshold: float = DEFAULT_VOICED_RMS,
        silence_ms: float = 500.0,
        barge_in_ms: float = 200.0,
        script: AutoScript | None = None,
        strict_tool_ids: bool = True,
        pong_delay_s: float = 0.0,
        late_transcript_delay_s: float = 0.25,
    ) -> None:
        self.host = host
        self.port = port
        self.auto = auto  # default for new conversations; each has its own `auto` too
        self.binary_frames = binary_frames
        self.api_keys = set(api_keys) if api_keys is not None else None  # None: any key
        self.voiced_threshold = voiced_threshold
        self.silence_ms = silence_ms
        self.barge_in_ms = barge_in_ms
        self.script = script or AutoScript()
        # close 1007 on an unknown, forgotten or repeated function-call id (always recorded)
        self.strict_tool_ids = strict_tool_ids
        self.pong_delay_s = pong_delay_s  # default for new connections (conn.pong_delay_s)
        self.late_transcript_delay_s = late_transcript_delay_s
        # the update sent while calls are pending; proto3 JSON would drop the false: {}
        self.not_resumable_update: JsonDict = {"resumable": False}
        self.protocol_errors: list[ProtocolErrorRecord] = []
        self.unknown_handles: list[tuple[float, str, int]] = []  # (time, handle, conn index)
        self._silent_turns = 0
        self.conversations: list[FakeConversation] = []
        self.connections: list[FakeConnection] = []  # every accepted WebSocket, in order
        self.http_rejections: list[tuple[float, str, int]] = []  # (time, path, status)
        self._ca_dir_arg = Path(ca_dir) if ca_dir is not None else None
        self._ca_dir: Path | None = None
        self._own_ca_dir = False
        self._ca = trustme.CA()
        self._server: Server | None = None
        self._changed = Signal()
        self._handles: dict[str, FakeConversation] = {}
        self._claimed: set[int] = set()
        self._hang_setups = 0
        self._setup_faults: list[_SetupFault] = []
        self._die_after_setup = 0
        self._handler_tasks: set[asyncio.Task[Any]] = set()

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> GeminiLiveFake:
        if self._server is not None:
            return self
        await asyncio.to_thread(self._write_ca_files)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._ca.issue_cert("127.0.0.1", "localhost", "::1").configure_cert(ctx)
        self._server = await serve(
            self._handler,
            self.host,
            self.port,
            ssl=ctx,
            process_request=self._process_request,
            max_size=16 * 2**20,  # JPEG frames can be big; Google's limit is unknown
        )
        sock = next(iter(self._server.sockets))
        self.port = int(sock.getsockname()[1])
        log.info("Gemini Live fake listening on %s (CA %s)", self.base_url, self.ca_file)
        return self

    def _write_ca_files(self) -> None:
        if self._ca_dir_arg is not None:
            self._ca_dir = self._ca_dir_arg
            self._ca_dir.mkdir(parents=True, exist_ok=True)
        else:
            self._ca_dir = Path(tempfile.mkdtemp(prefix="fake-gemini-"))
            self._own_ca_dir = True
        self._ca.cert_pem.write_to_path(str(self._ca_dir / "ca.pem"))
        # certifi + our CA, for processes that also need the public internet's roots
        (self._ca_dir / "ca-bundle.pem").write_bytes(
            Path(certifi.where()).read_bytes() + b"\n" + self._ca.cert_pem.bytes()
        )

    async def stop(self) -> None:
        if self._server is None:
            return
        for conv in self.conversations:
            await conv.cancel_tasks()
        self._server.close()  # closes open connections with 1001 (going away)
        await self._server.wait_closed()
        if self._handler_tasks:
            await asyncio.gather(*list(self._handler_tasks), return_exceptions=True)
        self._server = None
        if self._own_ca_dir and self._ca_dir is not None:
            shutil.rmtree(self._ca_dir, ignore_errors=True)
        log.info("Gemini Live fake stopped")

    async def __aenter__(self) -> GeminiLiveFake:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def ca_file(self) -> str:
        if self._ca_dir is None:
            raise RuntimeError("start() the fake first")
        return str(self._ca_dir / "ca.pem")

    @property
    def ca_bundle_file(self) -> str:
        """certifi's roots plus the fake's CA (SSL_CERT_FILE replaces the whole trust store)."""
        if self._ca_dir is None:
            raise RuntimeError("start() the fake first")
        return str(self._ca_dir / "ca-bundle.pem")

    def env(self) -> dict[str, str]:
        return {"GOOGLE_GEMINI_BASE_URL": self.base_url, "SSL_CERT_FILE": self.ca_file}

    def ssl_context(self) -> ssl.SSLContext:
        """A client context trusting the fake (for http_options.async_client_args)."""
        ctx = ssl.create_default_context()
        self._ca.configure_trust(ctx)
        return ctx

    # ----------------------------------------------------------------- waiting

    async def next_conversation(self, timeout: float = 10.0) -> FakeConversation:
        """The oldest conversation not yet returned by next_conversation()."""

        def find() -> FakeConversation | None:
            for conv in self.conversations:
                if conv.index not in self._claimed:
                    return conv
            return None

        conv = await self._changed.wait_for(find, timeout, "a new conversation")
        self._claimed.add(conv.index)
        return conv

    async def wait_for_conversation(
        self, predicate: Callable[[FakeConversation], bool], timeout: float = 10.0
    ) -> FakeConversation:
        """The first conversation (claimed or not) for which `predicate` holds."""

        def find() -> FakeConversation | None:
            return next((c for c in self.conversations if predicate(c)), None)

        return await self._changed.wait_for(find, timeout, "a matching conversation")

    async def wait_until(
        self, predicate: Callable[[], T | None], timeout: float = 10.0, what: str = "condition"
    ) -> T:
        """Generic wait: `predicate` is re-checked after every event the fake records;
        returns its first truthy result."""
        return await self._changed.wait_for(predicate, timeout, what)

    async def wait_for_connections(self, count: int, timeout: float = 10.0) -> FakeConnection:
        """Wait until `count` WebSockets were accepted in total; returns the latest."""
        return await self._changed.wait_for(
            lambda: self.connections[-1] if len(self.connections) >= count else None,
            timeout,
            f"{count} connections",
        )

    # ----------------------------------------------------------------- fault knobs

    def fail_next_setups(
        self, n: int = 1, code: int = 1008, reason: str = "models/fake is not found."
    ) -> None:
        """Close the next n connections right after their setup, before setupComplete."""
        self._setup_faults.extend(_SetupFault(code, reason) for _ in range(n))

    def hang_next_setups(self, n: int = 1) -> None:
        """Never answer the next n setups (socket stays open, pings answered)."""
        self._hang_setups += n

    def die_after_setup(self, n: int = 1) -> None:
        """Next n connections: setupComplete (+ resumption update), then close 1011."""
        self._die_after_setup += n

    def silent_after_user_turn(self, n: int = 1) -> None:
        """Session hang for the next n user turns, in any conversation: nothing at all is
        sent after them (see FakeConversation.ignore_next_user_turns)."""
        self._silent_turns += n

    # ----------------------------------------------------------------- strictness

    def record_protocol_error(
        self, kind: ProtocolErrorKind, detail: str, conn: FakeConnection, closed: bool
    ) -> ProtocolErrorRecord:
        conv = conn.conversation
        rec = ProtocolErrorRecord(
            time.monotonic(), kind, detail, conn.index, conv.id if conv else None, closed
        )
        self.protocol_errors.append(rec)
        if conv is not None:
            conv.protocol_errors.append(rec)
        log.warning("conn#%d protocol error %s: %s (close=%s)", conn.index, kind, detail, closed)
        self._changed.notify()
        return rec

    def assert_no_protocol_errors(self, *, allow: Collection[str] = ()) -> None:
        """Fail (AssertionError) if any client did something the real service refuses.

        `allow`: error kinds a test expects (e.g. {"cancelled_tool_call_answered"})."""
        errors = [e for e in self.protocol_errors if e.kind not in set(allow)]
        if errors:
            lines = "\n".join(
                f"  {e.conversation or '-'} conn#{e.connection} {e.kind}: {e.detail}"
                for e in errors
            )
            raise AssertionError(f"Gemini fake: {len(errors)} protocol error(s):\n{lines}")

    # ----------------------------------------------------------------- connection handling

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if not _PATH_RE.match(path):
            self.http_rejections.append((time.monotonic(), request.path, 404))
            log.warning("rejecting unknown path %s", request.path)
            return conn.respond(HTTPStatus.NOT_FOUND, "Not Found\n")
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handler_tasks.add(task)
        conn = FakeConnection(self, ws, len(self.connections))
        self._install_pong_delay(conn)
        m = _PATH_RE.match(urlsplit(conn.path).path)
        if m:
            conn.api_version, conn.method = m["version"], m["method"]
        conn.api_key = _api_key(conn.path, conn.headers)
        self.connections.append(conn)
        log.info("conn#%d opened %s %s", conn.index, conn.api_version, conn.method)
        self._changed.notify()
        try:
            await self._serve(conn)
        except ConnectionClosed:
            pass
        except Exception:
            log.exception("conn#%d: fake failed", conn.index)
            await ws.close(1011, REASON_INTERNAL)
        finally:
            await conn.wait_closed_and_mark()
            self._changed.notify()
            if task is not None:
                self._handler_tasks.discard(task)

    @staticmethod
    def _install_pong_delay(conn: FakeConnection) -> None:
        """Answer pings after conn.pong_delay_s (websockets answers them inside the protocol
        object, so the pong frame is held back there and flushed later)."""
        ws = conn.ws
        proto = ws.protocol
        send_frame = proto.send_frame

        def delayed_send_frame(frame: Frame) -> None:
            if frame.opcode is not Opcode.PONG:
                send_frame(frame)
                return
            conn.pings_received += 1
            delay = conn.pong_delay_s
            if delay <= 0:
                send_frame(frame)
                return

            def flush() -> None:
                if proto.state is not State.OPEN or ws.transport is None:
                    return
                send_frame(frame)
                with contextlib.suppress(Exception):
                    ws.send_data()

            asyncio.get_running_loop().call_later(delay, flush)

        proto.send_frame = delayed_send_frame  # type: ignore[method-assign]

    async def _serve(self, conn: FakeConnection) -> None:
        raw = await conn.ws.recv()
        conn.frames_in += 1
        try:
            msg = self._parse(raw)
        except ValueError:
            msg = {"unparsable": raw if isinstance(raw, str) else repr(raw[:200])}
        conn.record("in", msg)
        setup = msg.get("setup")
        if not isinstance(setup, dict):
            # the first message must be setup
            await conn.close(1007, REASON_INVALID_ARGUMENT)
            return
        conn.setup, conn.setup_at = setup, time.monotonic()
        self._changed.notify()
        info = SetupInfo(setup)
        log.info(
            "conn#%d setup model=%s voice=%s handle=%s",
            conn.index,
            info.model,
            info.voice,
            info.resumption_handle,
        )
        # Google accepts the upgrade and reports auth problems in the close frame (inferred)
        if not conn.api_key:
            await conn.close(1008, REASON_NO_KEY)
            return
        if self.api_keys is not None and conn.api_key not in self.api_keys:
            await conn.close(1007, REASON_BAD_KEY)
            return
        if why := info.refusal():
            # 3.8 setups the real service refuses (DESIGN.md; the reason text is inferred)
            self.record_protocol_error("unsupported_setup", why, conn, True)
            await conn.close(1007, why)
            return
        handle = info.resumption_handle
        conv = self._handles.get(handle) if handle else None
        if handle and conv is None:
            self.unknown_handles.append((time.monotonic(), handle, conn.index))
            log.warning("conn#%d presents an unknown handle %r", conn.index, handle)
        if conv is not None and handle is not None:
            conv.attach(conn)
            conv.resume_from(conn, handle)
            log.info("conn#%d resumes %s", conn.index, conv.id)
        if self._hang_setups > 0:
            self._hang_setups -= 1
            conn.hung = conn.hung_at_setup = True
            log.info("conn#%d: hanging at setup", conn.index)
            await self._read_loop(conn)
            return
        if self._setup_faults:
            fault = self._setup_faults.pop(0)
            await conn.close(fault.code, fault.reason)
            return
        if conv is None:
            conv = FakeConversation(self, len(self.conversations), self.auto)
            self.conversations.append(conv)
            conv.attach(conn)
            log.info("conn#%d starts %s", conn.index, conv.id)
        # proto3 JSON: an empty message is {} (no sessionId unless the server has one)
        await conn.send({"setupComplete": {}})
        conn.setup_complete_at = time.monotonic()
        if info.wants_resumption:
            await conv.issue_handle(conn)
        self._changed.notify()
        if self._die_after_setup > 0:
            self._die_after_setup -= 1
            await conn.close(1011, REASON_INTERNAL)
            return
        await self._read_loop(conn)

    async def _read_loop(self, conn: FakeConnection) -> None:
        async for raw in conn.ws:
            conn.frames_in += 1
            try:
                msg = self._parse(raw)
            except ValueError as e:
                conn.record("in", raw if isinstance(raw, str) else repr(raw[:200]))
                self.record_protocol_error("invalid_payload", str(e), conn, True)
                await conn.close(1007, REASON_INVALID_ARGUMENT)
                return
            conn.record("in", msg)
            if conn.conversation is not None and isinstance(msg, dict):
                try:
                    conn.conversation.on_message(conn, msg)
                except ProtocolViolation:  # recorded where it was found
                    await conn.close(1007, REASON_INVALID_ARGUMENT)
                    return
                except ValueError as e:  # e.g. undecodable base64
                    log.warning("conn#%d: bad client payload: %s", conn.index, e)
                    self.record_protocol_error("invalid_payload", str(e), conn, True)
                    await conn.close(1007, REASON_INVALID_ARGUMENT)
                    return

    @staticmethod
    def _parse(raw: str | bytes) -> JsonDict:
        try:
            msg = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"not JSON: {e}") from e
        if not isinstance(msg, dict):
            raise ValueError("not a JSON object")
        return msg

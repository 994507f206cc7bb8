"""The one error shape: `{"error": code, "detail": text}` with a 4xx/5xx status."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("token_server")


class ApiError(Exception):
    """Raised anywhere in request handling; rendered by the app's exception handler."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = dict(headers or {})


NO_STORE = {"Cache-Control": "no-store"}


def error_response(
    status: int, code: str, detail: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": code, "detail": detail},
        status_code=status,
        headers={**NO_STORE, **(headers or {})},
    )


class CatchAllMiddleware:
    """Turns any unhandled exception into a 500 JSON body.

    Sits inside the access log so the 500 is logged and counted. Logs the exception
    type and where it happened, not its message: messages can carry request data.
    (Starlette's own last-resort handler would re-raise and print the full traceback.)
    """

    def __init__(self, app: ASGIApp, *, on_error: Callable[[str], None] = lambda code: None):
        self.app = app
        self.on_error = on_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            frames = traceback.extract_tb(exc.__traceback__)[-3:]
            where = " <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in reversed(frames))
            log.error("unhandled %s at %s", type(exc).__name__, where)
            if started:
                raise  # too late for a clean answer; let the server close the connection
            self.on_error("internal_error")
            response = error_response(500, "internal_error", "unexpected server error")
            await response(scope, receive, send)

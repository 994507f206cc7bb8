"""ASGI middleware capping request body size (413), also for chunked uploads."""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from token_server.errors import error_response


class BodyLimitMiddleware:
    """Buffers the body up to the limit, then replays it to the app.

    Bodies here are small JSON documents, so buffering is cheap and lets us refuse
    before any handler runs, whether or not the client sent Content-Length.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int,
        path_limits: dict[str, int] | None = None,
        on_refuse: Callable[[str], None] = lambda code: None,
    ) -> None:
        self.app = app
        self.limit = limit
        self.path_limits = path_limits or {}
        self.on_refuse = on_refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.path_limits.get(scope["path"], self.limit)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self._refuse(scope, receive, send, limit)
            return

        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                # Client went away before finishing the body; nothing to answer.
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._refuse(scope, receive, send, limit)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        self.on_refuse("body_too_large")
        response = error_response(
            413, "body_too_large", f"request bodies are limited to {limit} bytes"
        )
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None

"""One Gemini Live connection as the plugin sees it, with kaiwa's observers in the path.

The plugin drives google-genai's `AsyncSession` through its public calls only (`receive`,
`send_client_content`, `send_tool_response`, `send_realtime_input`, `close`). kaiwa hands the
plugin this proxy instead, so that it can see every server message (the reply clock, the
tool ledger, resumption handles) and decide at the moment of sending where each function
response goes (the ledger's routing), without patching google-genai.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from google.genai import types
from google.genai.live import AsyncSession

from .ledger import ToolLedger

logger = logging.getLogger("kaiwa.gemini")


def result_as_text(resp: types.FunctionResponse) -> str:
    """A tool result for a server that never issued its call id (it was lost in a resume)."""
    body = json.dumps(resp.response or {}, ensure_ascii=False, default=str)[:2000]
    return (
        f"[kaiwa] While the connection was being restored, the tool {resp.name} finished "
        f"for the caller's earlier request. Its result: {body}. Tell the caller the outcome "
        f"in a sentence. Do not call {resp.name} again for this request."
    )


class LiveConnection:
    """Delegates to the SDK's AsyncSession; observes receives and routes tool responses."""

    def __init__(
        self,
        inner: AsyncSession,
        *,
        ledger: ToolLedger,
        on_message: Callable[[types.LiveServerMessage], None],
        on_text_sent: Callable[[], None],
    ) -> None:
        self._inner = inner
        self._ledger = ledger
        self._on_message = on_message
        self._on_text_sent = on_text_sent

    async def receive(self) -> AsyncIterator[types.LiveServerMessage]:
        async for msg in self._inner.receive():
            self._on_message(msg)
            yield msg

    async def send_tool_response(self, *, function_responses: Any) -> None:
        responses = list(
            function_responses if isinstance(function_responses, list) else [function_responses]
        )
        send: list[types.FunctionResponse] = []
        as_text: list[types.FunctionResponse] = []
        for resp in responses:
            route = self._ledger.route(resp.id) if resp.id else "send"
            if route == "send":
                send.append(resp)
            elif route == "as_text":
                as_text.append(resp)
            else:
                logger.info(
                    "not answering tool call %s again (already answered or cancelled)",
                    resp.id,
                    extra={"tool": resp.name, "call_id": resp.id},
                )
        if send:
            await self._inner.send_tool_response(function_responses=send)
        for resp in as_text:
            logger.info(
                "tool call %s was issued before the resumed handle; giving its result as text",
                resp.id,
                extra={"tool": resp.name, "call_id": resp.id},
            )
            await self._inner.send_client_content(
                turns=[types.Content(role="user", parts=[types.Part(text=result_as_text(resp))])],
                turn_complete=True,
            )
            self._on_text_sent()

    async def send_client_content(self, **kwargs: Any) -> None:
        await self._inner.send_client_content(**kwargs)

    async def send_realtime_input(self, **kwargs: Any) -> None:
        await self._inner.send_realtime_input(**kwargs)

    async def close(self) -> None:
        await self._inner.close()

    def __getattr__(self, name: str) -> Any:  # anything else the plugin may use
        return getattr(self._inner, name)

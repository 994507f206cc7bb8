"""Screen context: what the page shows, published by the page, read by the model on demand.

The page (the staff console, or any page using the contract in web/README.md) sends its
screen state to the agent over RPC whenever it changes:

    page → agent  `kaiwa.ui.context`
        {"v": 1, "seq": 12, "view": "queue", "filters": {...}, "sort": {...},
         "visible": ["R-1042", ...], "total": 31, "selected": "R-1042" | null,
         "form": {"name": ..., "fields": {...}, "dirty": [...]} | null}

at most MAX_CONTEXT_BYTES (UTF-8) per update; a larger or malformed update is refused with
an RPC error and the previous context stays. Only the call's own participant may publish.

Why a `get_screen` tool rather than pushing every change into the conversation (measured in
bench/results/screen_context.md): a pushed screen (an instruction update or a client-content
turn) goes out as `clientContent`, which interrupts any current model generation, so every
click while the agent speaks would cut it off; and it stays in the context window, 3.5-10x
the tokens of a tool over a shift. The tool costs one round trip (~20 ms here) plus one
model step, and only when the model needs the screen. The page also answers every UI action
with the resulting screen, so a follow-up to a voice command rarely needs it.

Participant attributes are not used: the page cannot set its own attributes without
`canUpdateOwnMetadata`, which would also let it rewrite its signed `kaiwa.role`.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from livekit import rtc
from livekit.agents import RunContext, llm

from .runtime import kaiwa_tool

logger = logging.getLogger("kaiwa.ui")

CONTEXT_RPC = "kaiwa.ui.context"
MAX_CONTEXT_BYTES = 4096
GET_SCREEN = "get_screen"

GET_SCREEN_SCHEMA: dict[str, Any] = {
    "name": GET_SCREEN,
    "description": (
        "What is on the user's screen right now: the view, its filters and sort, the ids of "
        "the visible cases in display order (visible[0] is the first one on screen), the "
        "selected (open) case, and an open form with its unsaved fields. Call it to resolve "
        "'this one', 'this case', 'the third one', 'the next one' or 'the case I'm looking "
        "at' before acting on a case; the user may have clicked since you last looked."
    ),
    "parameters": {"type": "object", "properties": {}},
}


def rpc_error(message: str) -> rtc.RpcError:
    """An application error the page sees (2400, like the page's own invalid payload)."""
    return rtc.RpcError(2400, message[:256])


@dataclass
class ScreenContext:
    """The latest screen context of one call's page (owned by that call's PageUI)."""

    page_identity: str
    latest: dict[str, Any] | None = None
    received_at: float | None = None
    updates: int = 0
    listeners: list[Any] = field(default_factory=list)

    def update(self, payload: str) -> dict[str, Any]:
        """Store one context update; raises ValueError with a short reason."""
        if len(payload.encode("utf-8", "replace")) > MAX_CONTEXT_BYTES:
            raise ValueError(f"context larger than {MAX_CONTEXT_BYTES} bytes")
        try:
            data = json.loads(payload)
        except ValueError:
            raise ValueError("context is not JSON") from None
        if not isinstance(data, dict):
            raise ValueError("context must be a JSON object")
        seq = data.get("seq")
        old = (self.latest or {}).get("seq")
        if isinstance(seq, int) and isinstance(old, int) and seq < old:
            return self.latest or data  # an older update that arrived late: keep the newer
        self.latest = data
        self.received_at = time.monotonic()
        self.updates += 1
        for listener in list(self.listeners):
            listener(data)
        return data

    async def on_rpc(self, data: rtc.RpcInvocationData) -> str:
        if data.caller_identity != self.page_identity:
            raise rpc_error("only the call's own page may publish its screen")
        try:
            self.update(data.payload or "")
        except ValueError as e:
            raise rpc_error(str(e)) from None
        return json.dumps({"ok": True})

    def snapshot(self) -> dict[str, Any]:
        """What get_screen answers."""
        if self.latest is None or self.received_at is None:
            return {
                "screen": None,
                "say": "The screen has not reported anything yet; ask the user what they see.",
            }
        age = round(time.monotonic() - self.received_at, 1)
        return {**self.latest, "age_s": age}


def get_screen_tool(screen: ScreenContext) -> llm.Tool:
    """The `get_screen` tool bound to one call's screen (offered only once a page declared)."""

    @kaiwa_tool(raw_schema=GET_SCREEN_SCHEMA, roles=("staff", "caller"), timeout_s=5)
    async def get_screen(raw_arguments: dict[str, object], ctx: RunContext) -> dict[str, Any]:
        return screen.snapshot()

    return get_screen

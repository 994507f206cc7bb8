"""UI control over LiveKit RPC: keep the caller's screen in step with the conversation.

The agent calls RPC methods registered by the caller's client (the web page registers
them; see README "UI RPC contract"). Each call is bounded by a timeout and never fails
the tool: a phone client without a screen simply doesn't register the methods, and the
conversation goes on.

Methods (payloads are JSON objects, the client answers "ok"):
- `kaiwa.ui.show_case`      {"case": <case dict, see desk.Case.to_dict>}
- `kaiwa.ui.status_changed` {"case_id": "R-1042", "from": "received", "to": "diagnosing"}
- `kaiwa.ui.clear`          {}
"""

from __future__ import annotations

import json
import logging
from typing import Any

from livekit import rtc
from livekit.agents import get_job_context

logger = logging.getLogger("kaiwa.ui")

SHOW_CASE = "kaiwa.ui.show_case"
STATUS_CHANGED = "kaiwa.ui.status_changed"
CLEAR = "kaiwa.ui.clear"
RPC_TIMEOUT_S = 3.0
# Clients answer these in their RPC error when a method isn't registered.
_NO_SCREEN = {rtc.RpcError.ErrorCode.UNSUPPORTED_METHOD, rtc.RpcError.ErrorCode.RECIPIENT_NOT_FOUND}


def _caller_identity(room: rtc.Room) -> str | None:
    for p in room.remote_participants.values():
        if p.kind != rtc.ParticipantKind.PARTICIPANT_KIND_AGENT:
            return p.identity
    return None


async def push(method: str, payload: dict[str, Any], *, room: rtc.Room | None = None) -> bool:
    """Send one UI update to the caller; True when the client handled it."""
    room = room or get_job_context().room
    identity = _caller_identity(room)
    if identity is None:
        return False
    try:
        await room.local_participant.perform_rpc(
            destination_identity=identity,
            method=method,
            payload=json.dumps(payload, ensure_ascii=False),
            response_timeout=RPC_TIMEOUT_S,
        )
        return True
    except rtc.RpcError as e:
        if e.code in _NO_SCREEN:
            logger.debug("caller has no screen for %s", method)
        else:
            logger.info("UI update %s not shown: %s (%s)", method, e.message, e.code)
        return False

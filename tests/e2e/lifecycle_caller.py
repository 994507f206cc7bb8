"""A caller in its own process, so a test can SIGKILL it: the honest "network died" case
(livekit.rtc runs its WebRTC stack in a native FFI library; killing the process drops the
signalling socket and the media without any goodbye to livekit-server).

    python -m tests.e2e.lifecycle_caller TOKEN_URL ROOM IDENTITY

Joins through the token server with the given room and identity, prints `JOINED`, then
`AGENT` once the agent is in the room and `HEARD` once it has heard ≥ 1 s of agent audio,
and keeps its microphone (silence) running until killed.
"""

from __future__ import annotations

import asyncio
import sys

from tests.support.caller import Caller


async def main(token_url: str, room: str, identity: str) -> None:
    caller = Caller(token_url)
    await caller.join({"room_name": room, "participant_identity": identity}, timeout=30)
    print("JOINED", caller.identity, caller.room_name, flush=True)
    await caller.wait_for_agent(timeout=60)
    print("AGENT", flush=True)
    await caller.wait_for_agent_audio(seconds=1.0, timeout=60)
    print("HEARD", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))

"""livekit-server's webhooks reach the token server's verified /livekit/webhook, so its room
and participant gauges count real rooms (as livekit.yaml sets up for `make run`).

Its own livekit-server (the shared one sends no webhooks) with livekit.yaml's webhook
pointed at a token server; a participant joins and the token server's /metrics counts the
room and the participant, then the participant's departure.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from tests.support.caller import Caller
from tests.support.stack import ROOT, LiveKitServer, TokenServer, worker_env

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
async def stack(
    livekit_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[TokenServer]:
    workdir = tmp_path_factory.mktemp("webhook")
    # the token server's port is chosen first: livekit-server's config names it
    tokens = TokenServer({}, workdir)
    server = LiveKitServer(livekit_binary, webhook_url=f"{tokens.url}/livekit/webhook")
    tokens.env = {**worker_env(server, {}), "PYTHONPATH": str(ROOT)}
    await server.start(workdir)
    try:
        await tokens.start_ready()
        yield tokens
    finally:
        await tokens.stop()
        await server.stop()


async def gauges(client: httpx.AsyncClient, url: str) -> tuple[float, float]:
    body = (await client.get(f"{url}/metrics")).text
    # every webhook verified: no refusal for a bad signature
    assert not re.search(r"^kaiwa_token_refusals_total\{.*invalid_signature.*\} [1-9]", body, re.M)
    rooms = re.search(r"^kaiwa_livekit_rooms (\S+)$", body, re.M)
    people = re.search(r"^kaiwa_livekit_participants (\S+)$", body, re.M)
    assert rooms and people, body[:1500]
    return float(rooms[1]), float(people[1])


async def wait_gauges(
    client: httpx.AsyncClient,
    url: str,
    ok: Callable[[float, float], bool],
    timeout: float = 15.0,
) -> tuple[float, float]:
    deadline = time.monotonic() + timeout
    while True:
        got = await gauges(client, url)
        if ok(*got):
            return got
        assert time.monotonic() < deadline, f"gauges stayed at {got}"
        await asyncio.sleep(0.2)


async def test_a_real_room_is_counted(stack: TokenServer) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        assert await gauges(client, stack.url) == (0.0, 0.0)
        caller = Caller(f"{stack.url}/token")
        await caller.join()
        try:
            rooms, people = await wait_gauges(client, stack.url, lambda r, p: r >= 1 and p >= 1)
            print(f"webhooks: {rooms:.0f} room(s), {people:.0f} participant(s) while in the call")
        finally:
            await caller.leave()
        # the departure is counted too (the room itself closes after departure_timeout)
        await wait_gauges(client, stack.url, lambda r, p: p == 0)

"""Fixtures for the real stack: livekit-server, the Gemini fake, the worker, the token server.

They are session-scoped (a worker takes seconds to start); every test uses a fresh room,
so it gets its own agent job and its own fake Gemini conversation.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes.gemini_live import FakeConversation, GeminiLiveFake
from tests.support.caller import Caller
from tests.support.stack import (
    LiveKitServer,
    TokenServer,
    Worker,
    find_livekit_server,
    worker_env,
)

AGENT_NAME = "kaiwa-test"
TEST_INSTRUCTIONS = "You are kaiwa under test. Keep answers short."
TEST_VOICE = "Kore"


async def fresh_conversation(
    gemini: GeminiLiveFake, since: float, timeout: float = 20.0
) -> FakeConversation:
    """The first fake conversation opened after `since`.

    The fake is shared by every worker of the session; stale conversations of earlier
    tests (other agents, re-dispatches) are claimed and skipped on the way.
    """
    deadline = time.monotonic() + timeout
    while True:
        conv = await gemini.next_conversation(timeout=max(0.1, deadline - time.monotonic()))
        if conv.created_at >= since:
            return conv


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def livekit_binary() -> str:
    binary = find_livekit_server()
    if binary is None:
        msg = "no livekit-server >= 1.13.3 (run `make livekit-server` or put one on PATH)"
        if os.environ.get("CI"):
            pytest.fail(msg)  # CI must never pass by skipping the end-to-end tests
        pytest.skip(msg)
    return binary


@pytest.fixture(scope="session")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
async def livekit(livekit_binary: str, stack_dir: Path) -> AsyncIterator[LiveKitServer]:
    server = LiveKitServer(livekit_binary)
    await server.start(stack_dir)
    yield server
    await server.stop()


@pytest.fixture(scope="session")
async def gemini() -> AsyncIterator[GeminiLiveFake]:
    async with GeminiLiveFake() as fake:
        yield fake


@pytest.fixture(scope="session")
def desk_db(stack_dir: Path) -> Path:
    return stack_dir / "desk.sqlite3"


@pytest.fixture(scope="session")
async def worker(
    livekit: LiveKitServer, gemini: GeminiLiveFake, stack_dir: Path, desk_db: Path
) -> AsyncIterator[Worker]:
    env = worker_env(
        livekit,
        gemini.env(),
        KAIWA_AGENT_NAME=AGENT_NAME,
        KAIWA_INSTRUCTIONS=TEST_INSTRUCTIONS,
        KAIWA_VOICE=TEST_VOICE,
        KAIWA_DESK_DB=str(desk_db),
    )
    proc = Worker(env, stack_dir)
    await proc.start_and_register()
    yield proc
    await proc.stop()


@pytest.fixture(scope="session")
async def token_server(livekit: LiveKitServer, stack_dir: Path) -> AsyncIterator[TokenServer]:
    env = worker_env(livekit, {}, KAIWA_AGENT_NAME=AGENT_NAME)
    proc = TokenServer(env, stack_dir)
    await proc.start_ready()
    yield proc
    await proc.stop()


@pytest.fixture
async def caller(token_server: TokenServer, worker: Worker) -> AsyncIterator[Caller]:
    c = Caller(f"{token_server.url}/token")
    yield c
    await c.leave()

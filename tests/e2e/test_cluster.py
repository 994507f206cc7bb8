"""The cluster `make cluster` starts, on free ports: redis-server, two livekit-server nodes
sharing it (livekit.cluster.yaml), two workers (one registered with each node, handles and
leases in the same Redis), a token server per node, and the Gemini fake.

* A caller on node A and a caller on node B both hear the greeting.
* kill -9 of the worker carrying a call (its whole process group: the worker and its job
  processes, as when a host dies): the other worker sees the lease run out and
  re-dispatches the room once; the caller hears the apology and the call continues in the
  SAME Gemini conversation (resumed from the handle in Redis).

The module runs its own processes (module-scoped) and kills one of them.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from livekit import api

from agent.cluster import CALLS_KEY
from agent.session_store import redis_client
from tests.e2e.conftest import fresh_conversation
from tests.fakes.gemini_live import GeminiLiveFake
from tests.support.caller import Caller, load_wav
from tests.support.redis import RedisServer, redis_server_or_skip
from tests.support.stack import (
    API_KEY,
    API_SECRET,
    ROOT,
    LiveKitServer,
    ManagedProcess,
    TokenServer,
    Worker,
    wait_http,
    worker_env,
)

AGENT = "kaiwa-cluster"
LEASE_S = 2.0
SPEECH = ROOT / "tests" / "fixtures" / "speech_en.wav"
RECOVERY_MARK = "previous agent process failed"

pytestmark = pytest.mark.timeout(120)


@dataclass
class ClusterNode(LiveKitServer):
    """One livekit-server of the cluster: livekit.cluster.yaml with its own ports."""

    name: str = "node"
    redis_address: str = ""

    def config(self, workdir: Path) -> Path:
        cfg = yaml.safe_load((ROOT / "livekit.cluster.yaml").read_text())
        cfg["port"] = self.port
        cfg["rtc"]["tcp_port"] = self.tcp_port
        cfg["rtc"]["udp_port"] = self.udp_port
        cfg["redis"]["address"] = self.redis_address
        path = workdir / f"livekit-{self.name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        return path

    async def start(self, workdir: Path) -> None:
        env = {**os.environ, "LIVEKIT_KEYS": f"{API_KEY}: {API_SECRET}"}
        self.process = ManagedProcess(
            f"cluster-livekit-{self.name}",
            [self.binary, "--config", str(self.config(workdir))],
            env=env,
            cwd=workdir,
        )
        await self.process.start()
        await self.process.wait_for_line(r"starting LiveKit server", timeout=30)
        await wait_http(f"http://127.0.0.1:{self.port}/", timeout=15)

    async def stop(self) -> None:
        # a node waits for its rooms' participants before exiting; nothing here needs that
        if self.process is not None:
            await self.process.stop(timeout=3)


@dataclass
class Cluster:
    redis: RedisServer
    nodes: dict[str, ClusterNode]
    workers: dict[str, Worker]
    tokens: dict[str, TokenServer]
    gemini: GeminiLiveFake


@pytest.fixture(scope="module")
async def cluster(
    livekit_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Cluster]:
    d = tmp_path_factory.mktemp("cluster")
    redis = RedisServer(redis_server_or_skip(), d / "redis")
    redis.start()
    nodes = {
        n: ClusterNode(livekit_binary, name=n, redis_address=redis.address) for n in ("a", "b")
    }
    workers: dict[str, Worker] = {}
    tokens: dict[str, TokenServer] = {}
    async with GeminiLiveFake() as gemini:
        try:
            await asyncio.gather(*(node.start(d) for node in nodes.values()))
            for n, node in nodes.items():
                env = worker_env(
                    node,
                    gemini.env(),
                    KAIWA_AGENT_NAME=AGENT,
                    KAIWA_DESK_DB=str(d / "desk.sqlite3"),
                    KAIWA_STATE_URL=redis.url,
                    KAIWA_WORKER_LEASE_S=str(LEASE_S),
                    KAIWA_LOAD_THRESHOLD="1000",
                    KAIWA_NUM_IDLE_PROCESSES="1",
                )
                workers[n] = Worker(env, d, name=f"cluster-worker-{n}")
                tokens[n] = TokenServer(
                    worker_env(
                        node,
                        {},
                        KAIWA_AGENT_NAME=AGENT,
                        KAIWA_ALLOW_CLIENT_ROOM_NAMES="true",
                        KAIWA_ALLOW_CLIENT_IDENTITIES="true",
                    ),
                    d,
                )
                tokens[n].name = f"cluster-token-server-{n}"
                tokens[n].log_path = tokens[n].log_path.with_name(f"{tokens[n].name}.log")
            await asyncio.gather(
                *(w.start_and_register() for w in workers.values()),
                *(t.start_ready() for t in tokens.values()),
            )
            yield Cluster(redis, nodes, workers, tokens, gemini)
        finally:
            await asyncio.gather(*(p.stop() for p in [*workers.values(), *tokens.values()]))
            await asyncio.gather(*(node.stop() for node in nodes.values()))
            redis.stop()


def _room(tag: str) -> str:
    return f"cl-{tag}-{os.urandom(3).hex()}"


async def _join(tokens: TokenServer, room: str, identity: str) -> Caller:
    c = Caller(f"{tokens.url}/token")
    await c.join({"room_name": room, "participant_identity": identity}, timeout=30)
    return c


async def _listed(redis: RedisServer, room: str, timeout: float) -> None:
    """Wait until a worker lists the room's call in the cluster state."""
    client = redis_client(redis.url)
    try:
        deadline = time.monotonic() + timeout
        while True:
            calls = await client.hvals(CALLS_KEY)
            if any(json.loads(c)["room"] == room for c in calls):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{room} not listed in {CALLS_KEY} within {timeout}s")
            await asyncio.sleep(0.1)
    finally:
        await client.aclose()


def _worker_of(cluster: Cluster, room: str) -> str:
    for n, w in cluster.workers.items():
        if any('"received job request"' in line and room in line for line in w.lines):
            return n
    raise AssertionError(f"no worker received {room}")


async def test_callers_on_both_nodes_hear_the_greeting(cluster: Cluster) -> None:
    started = time.time()
    callers: list[Caller] = []
    try:
        for n in ("a", "b"):
            c = await _join(cluster.tokens[n], _room(f"node-{n}"), f"caller-{n}")
            callers.append(c)
        for c in callers:
            await c.wait_for_agent(timeout=30)
            await c.wait_for_agent_audio(seconds=1.0, timeout=30)  # the greeting
        # each caller's signalling went through its own node (its token server hands out
        # that node's URL); the rooms live on whichever node the selector chose
        print(
            "cluster greeting:",
            {c.room_name: _worker_of(cluster, c.room_name) for c in callers},
            f"{time.time() - started:.1f}s",
        )
    finally:
        for c in callers:
            await c.leave()


async def test_worker_killed_call_continues_on_the_other_worker(cluster: Cluster) -> None:
    room = _room("kill")
    since = time.monotonic()
    caller = await _join(cluster.tokens["a"], room, "caller-kill")
    try:
        first_agent = await caller.wait_for_agent(timeout=30)
        await caller.wait_for_agent_audio(seconds=1.0, timeout=30)  # the greeting
        conv = await fresh_conversation(cluster.gemini, since)
        await cluster.gemini.wait_until(lambda: conv.last_handle, timeout=10, what="a handle")
        connections = len(conv.connections)
        known = len(cluster.gemini.conversations)
        victim_name = _worker_of(cluster, room)
        victim = cluster.workers[victim_name]
        survivor = next(w for n, w in cluster.workers.items() if n != victim_name)
        # the worker lists the call in Redis on its next lease renewal
        await _listed(cluster.redis, room, timeout=LEASE_S * 2)
        since_line = len(survivor.lines)

        assert victim.proc is not None
        os.killpg(victim.proc.pid, signal.SIGKILL)  # the worker and its job processes
        killed_at = time.monotonic()

        await caller.wait_until(
            lambda: any(
                p.identity != first_agent.identity and p.kind == first_agent.kind
                for p in caller.room.remote_participants.values()
            ),
            timeout=30,
            what="a replacement agent",
        )
        replaced_at = time.monotonic()
        # the same Gemini conversation, resumed from the dead job's last handle
        resumed = await conv.wait_for_connection(count=connections + 1, timeout=30)
        assert resumed.resumed_handle is not None
        assert len(cluster.gemini.conversations) == known  # no fresh conversation
        req = await conv.wait_for_client_content(
            lambda c: RECOVERY_MARK in (c.instructions or ""), timeout=20
        )
        await caller.wait_for_agent_audio(seconds=1.0, timeout=20, since=req.at)
        heard = caller.first_voiced_at(since=req.at)
        assert heard is not None
        line = await survivor.wait_for_line(
            r"recovery kind=job_redispatch", timeout=10, since=since_line
        )
        assert room in line
        took_over = [
            json.loads(x)
            for x in survivor.lines[since_line:]
            if '"worker lost; re-dispatching its call"' in x
        ]
        assert [t["room"] for t in took_over] == [room]  # once
        await caller.wait_until(
            lambda: first_agent.identity not in caller.room.remote_participants,
            timeout=10,
            what="the dead agent to be removed",
        )
        agents = [p for p in caller.room.remote_participants.values() if p.kind == first_agent.kind]
        assert len(agents) == 1

        # the conversation goes on with the new agent
        await caller.say_and_wait(load_wav(SPEECH))
        await conv.wait_for_voiced_audio(seconds=1.0, timeout=15)
        at = time.monotonic()
        await caller.wait_for_agent_audio(seconds=1.0, timeout=20, since=at)
        print(
            f"worker kill: replacement agent after {replaced_at - killed_at:.1f}s, "
            f"apology heard after {heard - killed_at:.1f}s (lease {LEASE_S:g}s)"
        )
        async with api.LiveKitAPI(
            cluster.nodes["b"].url.replace("ws://", "http://"), API_KEY, API_SECRET
        ) as lk:
            dispatches = await lk.agent_dispatch.list_dispatch(room_name=room)
            listed = await lk.room.list_participants(api.ListParticipantsRequest(room=room))
        replacements = [d for d in dispatches if "kaiwa_recovery" in (d.metadata or "")]
        assert len(replacements) == 1, dispatches
        # livekit-server did not restart the job on its own as well: still one agent
        kinds = [p.kind for p in listed.participants]
        assert kinds.count(api.ParticipantInfo.Kind.AGENT) == 1, listed
    finally:
        await caller.leave()

"""A crashed job is re-dispatched once, whoever sees it die: a Redis lock between workers
(KAIWA_STATE_URL), LiveKit's dispatch list without Redis; and a lost worker's calls are
taken over by exactly one of the surviving workers (real Redis, LiveKit API faked)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from livekit import api
from livekit.protocol import agent as agent_pb
from livekit.protocol import models

from agent import lifecycle
from agent.cluster import CALLS_KEY, ClusterState
from agent.lifecycle import RECOVERY_KEY, RecoveryInfo, WorkerRecovery, recovery_from_metadata
from agent.session_store import redis_client
from agent.settings import Settings
from tests.support.redis import RedisServer, running_redis

SECRET = "kaiwa-unit-secret-0123456789abcdef0123456789"
ROOM = "kaiwa-room-1"


class FakeLiveKit:
    """The three LiveKit API calls a re-dispatch makes, with a shared dispatch list."""

    dispatches: list[api.AgentDispatch]
    removed: list[str]
    participants: list[api.ParticipantInfo]

    @classmethod
    def reset(cls) -> None:
        cls.dispatches = []
        cls.removed = []
        cls.participants = [
            api.ParticipantInfo(identity="caller", kind=api.ParticipantInfo.Kind.STANDARD),
            api.ParticipantInfo(identity="agent-old", kind=api.ParticipantInfo.Kind.AGENT),
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.room = SimpleNamespace(
            list_participants=self._list_participants, remove_participant=self._remove
        )
        self.agent_dispatch = SimpleNamespace(
            list_dispatch=self._list_dispatch, create_dispatch=self._create
        )

    async def __aenter__(self) -> FakeLiveKit:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def _list_participants(self, req: api.ListParticipantsRequest) -> Any:
        await asyncio.sleep(0.01)  # a round trip: lets concurrent re-dispatches interleave
        return SimpleNamespace(participants=list(self.participants))

    async def _remove(self, req: api.RoomParticipantIdentity) -> None:
        self.removed.append(req.identity)

    async def _list_dispatch(self, room_name: str) -> list[api.AgentDispatch]:
        await asyncio.sleep(0.01)
        return [d for d in self.dispatches if d.room == room_name]

    async def _create(self, req: api.CreateAgentDispatchRequest) -> api.AgentDispatch:
        await asyncio.sleep(0.01)
        d = api.AgentDispatch(
            id=f"AD_{len(self.dispatches)}",
            agent_name=req.agent_name,
            room=req.room,
            metadata=req.metadata,
        )
        self.dispatches.append(d)
        return d


@pytest.fixture(autouse=True)
def fake_livekit(monkeypatch: pytest.MonkeyPatch) -> type[FakeLiveKit]:
    FakeLiveKit.reset()
    monkeypatch.setattr(lifecycle.api, "LiveKitAPI", FakeLiveKit)
    return FakeLiveKit


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Any]:
    client = redis_client(redis_server.url)
    await client.flushdb()
    yield client
    await client.aclose()


def settings(**over: Any) -> Settings:
    base: dict[str, Any] = {
        "livekit_api_secret": SECRET,
        "agent_name": "kaiwa",
        "job_redispatch_max": 5,
    }
    base.update(over)
    return Settings(**base)


def recovery_of(d: api.AgentDispatch) -> RecoveryInfo | None:
    return recovery_from_metadata(d.metadata, room=d.room, secret=SECRET, max_age_s=600)


def worker(s: Settings, server: Any = None) -> WorkerRecovery:
    return WorkerRecovery(server or SimpleNamespace(active_jobs=[]), s)


async def crash(w: WorkerRecovery, job_id: str = "AJ_dead", **kw: Any) -> None:
    await w._redispatch(
        ROOM,
        job_id,
        "agent-old",
        time.time(),
        scope=kw.get("scope", "AJ_dead"),
        attempt=kw.get("attempt", 1),
        kind=kw.get("kind", "job_crash"),
    )


# --------------------------------------------------------------------------- no Redis


async def test_without_redis_the_dispatch_list_prevents_a_second_dispatch(
    fake_livekit: type[FakeLiveKit],
) -> None:
    a, b = worker(settings()), worker(settings())
    await crash(a)
    await crash(b)  # a second observer of the same crash
    await crash(a)  # or the same one twice
    assert len(fake_livekit.dispatches) == 1
    info = recovery_of(fake_livekit.dispatches[0])
    assert info is not None and info.previous_job_id == "AJ_dead"
    assert fake_livekit.removed == ["agent-old"]
    # a later crash of the replacement is a new crash: re-dispatched again
    await crash(a, job_id="AJ_replacement", scope="AJ_dead", attempt=2)
    assert len(fake_livekit.dispatches) == 2
    second = recovery_of(fake_livekit.dispatches[1])
    assert second is not None and (second.scope, second.attempt) == ("AJ_dead", 2)


async def test_no_dispatch_when_the_caller_is_gone(fake_livekit: type[FakeLiveKit]) -> None:
    fake_livekit.participants = [fake_livekit.participants[1]]  # only the dead agent
    await crash(worker(settings()))
    assert fake_livekit.dispatches == []


# --------------------------------------------------------------------------- Redis


async def test_redis_lock_one_redispatch_for_concurrent_observers(
    redis: Any, redis_server: RedisServer, fake_livekit: type[FakeLiveKit]
) -> None:
    s = settings(state_url=redis_server.url)
    workers = []
    for i in range(4):
        w = worker(s)
        w.cluster = ClusterState(redis_client(redis_server.url), f"w{i}", 10)
        workers.append(w)
    await asyncio.gather(*(crash(w) for w in workers))
    assert len(fake_livekit.dispatches) == 1
    assert await redis.exists(ClusterState.lock_key(ROOM, "AJ_dead")) == 1
    ttl_ms = await redis.pttl(ClusterState.lock_key(ROOM, "AJ_dead"))
    assert 590_000 < ttl_ms <= 600_000  # held for the recovery max age
    for w in workers:
        assert w.cluster is not None
        await w.cluster.aclose()


async def test_claim_is_per_room_and_job(redis: Any) -> None:
    c = ClusterState(redis, "w1", 10)
    other = ClusterState(redis, "w2", 10)
    assert await c.claim_redispatch("room", "AJ_1", 60)
    assert not await other.claim_redispatch("room", "AJ_1", 60)
    assert await other.claim_redispatch("room", "AJ_2", 60)
    assert await other.claim_redispatch("room-2", "AJ_1", 60)


def running_job(job_id: str, room: str, metadata: str = "", identity: str = "") -> Any:
    return SimpleNamespace(
        fake_job=False,
        job=agent_pb.Job(id=job_id, room=models.Room(name=room), metadata=metadata),
        accept_arguments=SimpleNamespace(identity=identity or f"agent-{job_id}"),
    )


async def test_a_lost_workers_calls_are_taken_over_once(
    redis: Any, redis_server: RedisServer, fake_livekit: type[FakeLiveKit]
) -> None:
    s = settings(state_url=redis_server.url, worker_lease_s=1)
    # The lost worker ran two calls: a first job, and a replacement of an earlier crash.
    earlier = RecoveryInfo("job_crash", "AJ_0", time.time() - 30, 1, "AJ_first")
    lost_server = SimpleNamespace(
        active_jobs=[
            running_job("AJ_a", ROOM, identity="agent-old"),
            running_job(
                "AJ_b", "kaiwa-room-2", earlier.to_metadata(room="kaiwa-room-2", secret=SECRET)
            ),
        ]
    )
    lost = worker(s, lost_server)
    lost.cluster = ClusterState(redis_client(redis_server.url), "lost", 0.3)
    await lost.cluster.report(lost._records())
    assert await redis.hlen(CALLS_KEY) == 2

    survivors = []
    for i in range(3):
        w = worker(s)
        w.cluster = ClusterState(redis_client(redis_server.url), f"alive-{i}", 5)
        await w.cluster.report([])
        survivors.append(w)
    # while the lost worker's lease lasts, nothing is an orphan
    for w in survivors:
        assert w.cluster is not None
        assert await w.cluster.orphans(max_age_s=7200) == []

    await asyncio.sleep(0.5)  # the lease runs out (the worker was killed: no renewal)

    async def scan(w: WorkerRecovery) -> None:
        assert w.cluster is not None
        for rec in await w.cluster.orphans(max_age_s=7200):
            await w._adopt(w.cluster, rec)

    await asyncio.gather(*(scan(w) for w in survivors))
    await asyncio.gather(*(t for w in survivors for t in list(w._tasks)))

    assert sorted(d.room for d in fake_livekit.dispatches) == [ROOM, "kaiwa-room-2"]
    by_room = {d.room: recovery_of(d) for d in fake_livekit.dispatches}
    a, b = by_room[ROOM], by_room["kaiwa-room-2"]
    assert a is not None and (a.kind, a.previous_job_id, a.scope, a.attempt) == (
        "worker_lost",
        "AJ_a",
        "AJ_a",
        1,
    )
    # the conversation's scope survives a second takeover; the attempt counts on
    assert b is not None and (b.previous_job_id, b.scope, b.attempt) == ("AJ_b", "AJ_first", 2)
    assert "agent-old" in fake_livekit.removed
    assert await redis.hlen(CALLS_KEY) == 0  # adopted calls are no longer listed
    for w in [lost, *survivors]:
        assert w.cluster is not None
        await w.cluster.aclose()


async def test_ended_calls_leave_the_list(redis: Any) -> None:
    s = settings(worker_lease_s=5)
    server = SimpleNamespace(active_jobs=[running_job("AJ_1", ROOM), running_job("AJ_2", ROOM)])
    w = worker(s, server)
    w.cluster = ClusterState(redis, "w", 5)
    await w.cluster.report(w._records())
    assert await redis.hlen(CALLS_KEY) == 2
    server.active_jobs = server.active_jobs[1:]
    await w.cluster.report(w._records())
    assert await redis.hkeys(CALLS_KEY) in ([b"AJ_2"], ["AJ_2"])
    record = json.loads(await redis.hget(CALLS_KEY, "AJ_2"))
    assert record["worker"] == "w" and record["scope"] == "AJ_2"


async def test_a_forged_recovery_never_reaches_the_signed_metadata(
    redis: Any, redis_server: RedisServer, fake_livekit: type[FakeLiveKit]
) -> None:
    """A job started with forged recovery metadata claiming a victim's scope runs as a new
    conversation; if its worker dies, the takeover signs the job's OWN scope."""
    forged = json.dumps(
        {
            RECOVERY_KEY: {
                "kind": "job_crash",
                "previous_job_id": "AJ_x",
                "crashed_at": time.time(),
                "attempt": 1,
                "scope": "AJ_victim",
                "sig": "00" * 32,
            }
        }
    )
    s = settings(state_url=redis_server.url)
    lost = worker(s, SimpleNamespace(active_jobs=[running_job("AJ_f", ROOM, forged)]))
    lost.cluster = ClusterState(redis_client(redis_server.url), "lost", 0.2)
    await lost.cluster.report(lost._records())
    await asyncio.sleep(0.3)
    w = worker(s)
    w.cluster = ClusterState(redis_client(redis_server.url), "alive", 5)
    for rec in await w.cluster.orphans(max_age_s=7200):
        await w._adopt(w.cluster, rec)
    await asyncio.gather(*list(w._tasks))
    (d,) = fake_livekit.dispatches
    info = recovery_of(d)
    assert info is not None and info.scope == "AJ_f"
    await lost.cluster.aclose()
    await w.cluster.aclose()

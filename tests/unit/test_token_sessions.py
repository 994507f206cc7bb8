"""KAIWA_MAX_SESSIONS_PER_IDENTITY: one identity cannot hold more than N live sessions."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest
from livekit import api

from tests.unit.test_token_helpers import FakeSessions, make_client
from token_server.sessions import (
    LiveKitRooms,
    SessionGuard,
    SessionsUnavailable,
    TooManySessions,
)

PROXY = {"token_auth": "proxy", "token_proxy_header": "X-Auth-User"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


# -- the guard ------------------------------------------------------------------------------


def test_live_sessions_count_against_the_cap() -> None:
    source = FakeSessions({"alice": {"r1", "r2"}})
    guard = SessionGuard(source, limit=3, clock=Clock())

    async def scenario() -> None:
        await guard.admit("alice", "r3", 900)  # 2 live + this one = 3
        with pytest.raises(TooManySessions) as refused:
            await guard.admit("alice", "r4", 900)
        assert (refused.value.live, refused.value.limit) == (3, 3)
        await guard.admit("alice", "r3", 900)  # the same room again is not a new session
        await guard.admit("bob", "r9", 900)  # others are unaffected

    _run(scenario())


def test_unused_tokens_count_until_they_expire() -> None:
    # A burst of token requests must not slip past the cap before any join shows up.
    clock = Clock()
    guard = SessionGuard(FakeSessions(), limit=3, clock=clock)

    async def scenario() -> None:
        for room in ("a", "b", "c"):
            await guard.admit("alice", room, 900)
        with pytest.raises(TooManySessions):
            await guard.admit("alice", "d", 900)
        clock.now += 901  # the tokens can no longer be used to join
        await guard.admit("alice", "d", 900)

    _run(scenario())


def test_joined_then_left_frees_the_slot() -> None:
    source = FakeSessions()
    guard = SessionGuard(source, limit=1, clock=Clock())

    async def scenario() -> None:
        await guard.admit("alice", "a", 900)
        source.rooms["alice"] = {"a"}  # joined: now counted live, not pending
        with pytest.raises(TooManySessions):
            await guard.admit("alice", "b", 900)
        source.rooms["alice"] = set()  # hung up
        await guard.admit("alice", "b", 900)

    _run(scenario())


def test_concurrent_requests_cannot_overshoot() -> None:
    guard = SessionGuard(FakeSessions(), limit=3, clock=Clock())

    async def scenario() -> list[object]:
        return await asyncio.gather(
            *(guard.admit("alice", f"r{n}", 900) for n in range(8)), return_exceptions=True
        )

    results = _run(scenario())
    assert results.count(None) == 3
    assert all(isinstance(r, TooManySessions) for r in results if r is not None)


def test_cap_off_never_asks_livekit() -> None:
    source = FakeSessions({"alice": {"r1", "r2", "r3", "r4"}})
    _run(SessionGuard(source, limit=0).admit("alice", "r5", 900))
    assert source.calls == 0


def test_unavailable_count_fails_closed() -> None:
    source = FakeSessions()
    source.down = True
    with pytest.raises(SessionsUnavailable):
        _run(SessionGuard(source, limit=3).admit("alice", "r1", 900))


def test_pending_memory_is_bounded() -> None:
    guard = SessionGuard(FakeSessions(), limit=3, clock=Clock(), max_identities=2)

    async def scenario() -> None:
        for user in ("a", "b", "c"):
            await guard.admit(user, "room", 900)

    _run(scenario())
    assert list(guard._pending) == ["b", "c"]


# -- over HTTP ----------------------------------------------------------------------------------


def test_429_when_an_identity_is_at_its_cap() -> None:
    sessions = FakeSessions({"alice": {"r1", "r2"}})
    client = make_client(sessions=sessions, max_sessions_per_identity=2, **PROXY)
    refused = client.post("/token", json={}, headers={"X-Auth-User": "alice"})
    assert refused.status_code == 429
    assert refused.json() == {
        "error": "too_many_sessions",
        "detail": "this identity already has 2 live sessions (limit 2); end one before "
        "starting another",
    }
    assert "participant_token" not in refused.text
    assert client.post("/token", json={}, headers={"X-Auth-User": "bob"}).status_code == 200
    metrics = client.get("/metrics").text
    assert 'kaiwa_token_refusals_total{reason="too_many_sessions"} 1.0' in metrics


def test_default_cap_is_three_and_counts_fresh_tokens() -> None:
    client = make_client(**PROXY)
    headers = {"X-Auth-User": "alice"}
    statuses = [client.post("/token", json={}, headers=headers).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


def test_bearer_key_identity_and_client_chosen_identity_are_capped() -> None:
    client = make_client(
        token_auth="bearer",
        token_bearer_keys="k identity=alice",
        sessions=FakeSessions({"alice": {"r1"}}),
        max_sessions_per_identity=1,
    )
    response = client.post("/token", json={}, headers={"Authorization": "Bearer k"})
    assert response.status_code == 429

    client = make_client(
        allow_client_identities=True,
        sessions=FakeSessions({"bob": {"r1"}}),
        max_sessions_per_identity=1,
    )
    assert client.post("/token", json={"participant_identity": "bob"}).status_code == 429
    assert client.post("/token", json={"participant_identity": "carol"}).status_code == 200


def test_generated_identities_skip_the_lookup() -> None:
    # Open mode makes a fresh identity per request: it holds no other session, and
    # livekit-server is not asked (the per-client rate limit guards open mode).
    sessions = FakeSessions()
    sessions.down = True
    client = make_client(sessions=sessions)
    for _ in range(5):
        assert client.post("/token", json={}).status_code == 200
    bearer = make_client(token_auth="bearer", token_bearer_keys="kiosk", sessions=sessions)
    assert bearer.post("/token", headers={"Authorization": "Bearer kiosk"}).status_code == 200
    assert sessions.calls == 0


def test_503_when_livekit_cannot_be_asked() -> None:
    sessions = FakeSessions()
    sessions.down = True
    client = make_client(sessions=sessions, **PROXY)
    response = client.post("/token", json={}, headers={"X-Auth-User": "alice"})
    assert response.status_code == 503
    assert response.json()["error"] == "session_check_unavailable"
    assert response.headers["retry-after"] == "2"
    assert "participant_token" not in response.text


# -- counting from livekit-server --------------------------------------------------------------


def _participant(identity: str, kind: int = 0, state: int = 2) -> api.ParticipantInfo:
    return api.ParticipantInfo(identity=identity, kind=kind, state=state)  # type: ignore[arg-type]


@dataclass
class FakeRoomService:
    rooms: dict[str, list[api.ParticipantInfo]]
    listed: list[str] = field(default_factory=list)
    list_rooms_calls: int = 0

    async def list_rooms(self, request: api.ListRoomsRequest) -> api.ListRoomsResponse:
        self.list_rooms_calls += 1
        # livekit-server refreshes num_participants only every few seconds: a room just
        # joined says 0. The snapshot must not rely on it.
        return api.ListRoomsResponse(
            rooms=[api.Room(name=name, num_participants=0) for name in self.rooms]
        )

    async def list_participants(
        self, request: api.ListParticipantsRequest
    ) -> api.ListParticipantsResponse:
        self.listed.append(request.room)
        return api.ListParticipantsResponse(participants=self.rooms[request.room])


@dataclass
class FakeLiveKitAPI:
    room: FakeRoomService
    closed: bool = False

    async def aclose(self) -> None:
        self.closed = True


def test_snapshot_from_room_service() -> None:
    agent, disconnected = api.ParticipantInfo.Kind.AGENT, api.ParticipantInfo.State.DISCONNECTED
    service = FakeRoomService(
        {
            "kaiwa-1": [_participant("alice"), _participant("agent-1", kind=agent)],
            "kaiwa-2": [_participant("alice"), _participant("bob", state=disconnected)],
            "kaiwa-3": [_participant("bob", state=0)],  # joining counts
            "empty": [],
        }
    )
    fake = FakeLiveKitAPI(service)
    clock = Clock()
    rooms = LiveKitRooms("ws://127.0.0.1:1", "key", "secret" * 6, clock=clock)
    rooms._api = fake  # type: ignore[assignment]

    async def scenario() -> None:
        snapshot = await rooms.snapshot()
        assert snapshot == {"alice": {"kaiwa-1", "kaiwa-2"}, "bob": {"kaiwa-3"}}
        assert sorted(service.listed) == ["empty", "kaiwa-1", "kaiwa-2", "kaiwa-3"]
        await rooms.snapshot()  # cached
        assert service.list_rooms_calls == 1
        clock.now += 5
        await rooms.snapshot()
        assert service.list_rooms_calls == 2
        await rooms.aclose()

    _run(scenario())
    assert fake.closed


def test_unreachable_livekit_is_unavailable_and_not_hammered() -> None:
    # Nothing listens on port 1: connection refused, no network needed.
    clock = Clock()
    rooms = LiveKitRooms("ws://127.0.0.1:1", "key", "secret" * 6, clock=clock)

    async def scenario() -> None:
        with pytest.raises(SessionsUnavailable):
            await rooms.snapshot()
        await rooms.aclose()  # the real client; a fake one from here on
        service = FakeRoomService({})
        rooms._api = FakeLiveKitAPI(service)  # type: ignore[assignment]
        with pytest.raises(SessionsUnavailable):  # within FAILURE_TTL: not retried
            await rooms.snapshot()
        assert service.list_rooms_calls == 0
        clock.now += 2
        assert await rooms.snapshot() == {}
        await rooms.aclose()

    _run(scenario())

"""Per-identity cap on concurrent sessions (KAIWA_MAX_SESSIONS_PER_IDENTITY).

A session is a room the identity is in. The count is

    rooms where livekit-server shows the identity now        (LiveKitRooms snapshot)
  + rooms we issued the identity a token for that it has not  (pending, kept here until
    joined yet, while that token can still be used to join     the token's TTL runs out)

and a new token is refused (429) when that would exceed the cap.

Where the live count comes from: livekit-server itself (RoomService ListRooms +
ListParticipants), not the webhook events. It is the authority: it survives a token
server restart, counts sessions joined with tokens from other token-server instances,
sees every node of a Redis cluster, and needs no webhook configured in livekit.yaml
(webhooks are best-effort and a missed participant_left would lock a user out until a
restart). Its cost is one ListRooms plus one ListParticipants per room (every room:
ListRooms' num_participants lags joins by seconds, so it cannot be used to skip rooms),
so the snapshot is shared by all identities, cached for SNAPSHOT_TTL seconds and fetched
by one request at a time. It is only needed for identities that can have other sessions:
authenticated ones (proxy user, bearer key identity) and client-chosen ones. Identities
the server generates per request are fresh by construction and skip it, so open mode
never calls the API (the per-client rate limit is its guard).

Pending reservations close the window between issuing a token and its join showing up
in a snapshot: without them a client could fetch many tokens at once and join them all.

Failure mode: fails CLOSED. If livekit-server's API does not answer, authenticated and
client-chosen identities get 503 (with Retry-After) instead of a token. An unverifiable
count cannot enforce a cap, and a livekit-server the token server cannot reach is one the
caller most likely cannot use either, so refusing costs little; failing open would let
sessions pile up exactly when the server is struggling. Generated identities (open mode)
are unaffected.

Limit of the design: a token that was used and whose session ended can be used again to
rejoin its room until the token expires; that rejoin is not counted in advance. Keep
KAIWA_TOKEN_TTL_SECONDS short (default 15 min).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Protocol

import aiohttp
from livekit import api

log = logging.getLogger("token_server.sessions")

SNAPSHOT_TTL = 2.0  # seconds a livekit-server snapshot is reused
FAILURE_TTL = 1.0  # after a failed snapshot, refuse without retrying for this long
API_TIMEOUT = 3.0  # seconds for the whole snapshot
API_CONCURRENCY = 8  # ListParticipants calls in flight at once

Snapshot = Mapping[str, frozenset[str]]  # identity -> room names it is in


class SessionsUnavailable(Exception):
    """The live session count could not be read (the cap fails closed)."""


class TooManySessions(Exception):
    def __init__(self, live: int, limit: int) -> None:
        super().__init__(f"{live} sessions, limit {limit}")
        self.live = live
        self.limit = limit


class SessionSource(Protocol):
    async def snapshot(self) -> Snapshot:
        """identity -> rooms it is in now. Raises SessionsUnavailable."""
        ...

    async def aclose(self) -> None: ...


class LiveKitRooms:
    """Snapshots of who is in which room, from livekit-server's RoomService."""

    def __init__(
        self,
        url: str,
        api_key: str,
        api_secret: str,
        *,
        ttl: float = SNAPSHOT_TTL,
        timeout: float = API_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._api_key = api_key
        self._api_secret = api_secret
        self._ttl = ttl
        self._timeout = timeout
        self._clock = clock
        self._lock = asyncio.Lock()
        self._api: api.LiveKitAPI | None = None  # made on first use: needs a running loop
        self._cached: Snapshot | None = None
        self._cached_at = float("-inf")
        self._failed_at = float("-inf")

    def __repr__(self) -> str:
        return f"LiveKitRooms(url={self._url!r})"

    async def snapshot(self) -> Snapshot:
        async with self._lock:  # one fetch at a time; waiters reuse its result
            now = self._clock()
            if self._cached is not None and now - self._cached_at < self._ttl:
                return self._cached
            if now - self._failed_at < FAILURE_TTL:
                raise SessionsUnavailable("livekit-server API failed just now")
            try:
                snapshot = await asyncio.wait_for(self._fetch(), self._timeout)
            except Exception as exc:  # timeout, refused, HTTP error, not LiveKit at all
                self._failed_at = self._clock()
                log.warning("session count unavailable: %s", type(exc).__name__)
                raise SessionsUnavailable(type(exc).__name__) from exc
            self._cached, self._cached_at = snapshot, self._clock()
            return snapshot

    async def _fetch(self) -> Snapshot:
        if self._api is None:
            self._api = api.LiveKitAPI(
                self._url,
                self._api_key,
                self._api_secret,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            )
        lk = self._api
        rooms = await lk.room.list_rooms(api.ListRoomsRequest())
        gate = asyncio.Semaphore(API_CONCURRENCY)

        async def participants(room: str) -> tuple[str, list[api.ParticipantInfo]]:
            async with gate:
                found = await lk.room.list_participants(api.ListParticipantsRequest(room=room))
            return room, list(found.participants)

        # Every room: num_participants in ListRooms is refreshed only every few seconds
        # (seen as 0 for ~5 s after a join on livekit-server 1.13).
        listed = await asyncio.gather(*(participants(r.name) for r in rooms.rooms))
        by_identity: dict[str, set[str]] = {}
        for room, people in listed:
            for p in people:
                if p.kind == api.ParticipantInfo.Kind.AGENT:
                    continue
                if p.state == api.ParticipantInfo.State.DISCONNECTED:
                    continue
                by_identity.setdefault(p.identity, set()).add(room)
        return {identity: frozenset(rooms) for identity, rooms in by_identity.items()}

    async def aclose(self) -> None:
        if self._api is not None:
            await self._api.aclose()
            self._api = None


class SessionGuard:
    """Admits a new token for (identity, room) or raises TooManySessions/Unavailable."""

    def __init__(
        self,
        source: SessionSource,
        limit: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_identities: int = 100_000,
    ) -> None:
        self.source = source
        self.limit = limit
        self._clock = clock
        self._max_identities = max_identities
        # identity -> {room: when its token stops being usable to join}
        self._pending: OrderedDict[str, dict[str, float]] = OrderedDict()

    async def admit(self, identity: str, room: str, ttl_seconds: float) -> None:
        if self.limit <= 0:
            return
        live = (await self.source.snapshot()).get(identity, frozenset())
        # No await from here on: count and reserve are atomic on the event loop, so
        # concurrent requests for one identity see each other's reservations.
        now = self._clock()
        pending = {
            r: until
            for r, until in self._pending.get(identity, {}).items()
            if until > now and r not in live  # expired, or joined: live counts it now
        }
        rooms = set(live) | set(pending)
        if room not in rooms and len(rooms) >= self.limit:
            self._store(identity, pending)
            raise TooManySessions(len(rooms), self.limit)
        pending[room] = max(pending.get(room, 0.0), now + ttl_seconds)
        self._store(identity, pending)

    def _store(self, identity: str, pending: dict[str, float]) -> None:
        if not pending:
            self._pending.pop(identity, None)
            return
        self._pending[identity] = pending
        self._pending.move_to_end(identity)
        while len(self._pending) > self._max_identities:  # bound memory; oldest first
            self._pending.popitem(last=False)

    async def aclose(self) -> None:
        await self.source.aclose()

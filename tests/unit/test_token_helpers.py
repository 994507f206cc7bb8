"""Shared helpers for the token-server tests (no tests here)."""

from __future__ import annotations

from collections.abc import Mapping, Set
from typing import Any

import jwt
from fastapi import FastAPI
from fastapi.testclient import TestClient
from livekit import api
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from token_server.app import Probe, create_app
from token_server.sessions import SessionsUnavailable, Snapshot
from token_server.settings import Settings

API_KEY = "test-key"
API_SECRET = "s3cr3t-" + "x" * 40  # ≥ 32 chars; searched for in responses and logs
# TestClient's TCP peer: loopback, like a server behind a proxy on the same host.
LOOPBACK_PEER = ("127.0.0.1", 50000)


class FakeSessions:
    """Stands in for livekit-server's room listing behind the session cap."""

    def __init__(self, rooms: Mapping[str, Set[str]] | None = None) -> None:
        self.rooms: dict[str, set[str]] = {k: set(v) for k, v in (rooms or {}).items()}
        self.down = False
        self.calls = 0

    async def snapshot(self) -> Snapshot:
        self.calls += 1
        if self.down:
            raise SessionsUnavailable("fake livekit-server is down")
        return {identity: frozenset(rooms) for identity, rooms in self.rooms.items()}

    async def aclose(self) -> None:
        pass


class IsolatedSettings(Settings):
    """Settings from constructor arguments only: the developer's env and .env are ignored."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "livekit_api_key": API_KEY,
        "livekit_api_secret": API_SECRET,
        "livekit_url": "ws://127.0.0.1:1",  # nothing listens: no accidental network use
        "web_dir": "/nonexistent-kaiwa-web",
        "token_rate": 1000.0,
        "token_burst": 1000,
    }
    values.update(overrides)
    return IsolatedSettings(**values)


async def ready_probe() -> str | None:
    return None


def make_app(
    probe: Probe | None = ready_probe, sessions: FakeSessions | None = None, **overrides: Any
) -> FastAPI:
    return create_app(make_settings(**overrides), probe=probe, sessions=sessions or FakeSessions())


def make_client(
    probe: Probe | None = ready_probe,
    sessions: FakeSessions | None = None,
    peer: tuple[str, int] = LOOPBACK_PEER,
    **overrides: Any,
) -> TestClient:
    return TestClient(
        make_app(probe=probe, sessions=sessions, **overrides),
        raise_server_exceptions=False,
        client=peer,
    )


def verify(token: str) -> api.Claims:
    return api.TokenVerifier(API_KEY, API_SECRET).verify(token)


def raw_claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, API_SECRET, algorithms=["HS256"], issuer=API_KEY)

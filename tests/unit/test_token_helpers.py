"""Shared helpers for the token-server tests (no tests here)."""

from __future__ import annotations

from typing import Any

import jwt
from fastapi import FastAPI
from fastapi.testclient import TestClient
from livekit import api
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from token_server.app import Probe, create_app
from token_server.settings import Settings

API_KEY = "test-key"
API_SECRET = "s3cr3t-" + "x" * 40  # ≥ 32 chars; searched for in responses and logs


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


def make_app(probe: Probe | None = ready_probe, **overrides: Any) -> FastAPI:
    return create_app(make_settings(**overrides), probe=probe)


def make_client(probe: Probe | None = ready_probe, **overrides: Any) -> TestClient:
    return TestClient(make_app(probe=probe, **overrides), raise_server_exceptions=False)


def verify(token: str) -> api.Claims:
    return api.TokenVerifier(API_KEY, API_SECRET).verify(token)


def raw_claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, API_SECRET, algorithms=["HS256"], issuer=API_KEY)

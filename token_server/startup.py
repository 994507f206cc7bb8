"""Refuse to start with a configuration that is unsafe or cannot work."""

from __future__ import annotations

import ipaddress

from token_server.readiness import probe_url
from token_server.settings import AuthMode, Settings

MIN_SECRET_LENGTH = 32


class StartupError(Exception):
    """A one-line, user-facing reason the server will not start."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a hostname: could resolve anywhere, treat as public


def check_settings(settings: Settings, host: str | None = None) -> None:
    """Raise StartupError naming the first problem; `host` overrides the settings' host."""
    host = host or settings.token_host
    secret = settings.livekit_api_secret.get_secret_value() if settings.livekit_api_secret else ""
    if not settings.livekit_api_key or not secret:
        raise StartupError(
            "LIVEKIT_API_KEY and LIVEKIT_API_SECRET must be set (environment or .env)"
        )
    if len(secret) < MIN_SECRET_LENGTH and not settings.dev_mode:
        raise StartupError(
            f"LIVEKIT_API_SECRET is shorter than {MIN_SECRET_LENGTH} characters; use a "
            "generated secret (livekit-server generate-keys) or set KAIWA_DEV=1 for local use"
        )
    for name, url in (
        ("LIVEKIT_URL", settings.livekit_url),
        ("KAIWA_PUBLIC_LIVEKIT_URL", settings.public_livekit_url),
    ):
        if url is not None:
            try:
                probe_url(url)
            except ValueError as exc:
                raise StartupError(f"{name}: {exc}") from None
    if settings.agent_name not in settings.allowed_agent_names:
        raise StartupError(
            f"KAIWA_AGENT_NAME {settings.agent_name!r} must be in KAIWA_ALLOWED_AGENT_NAMES"
        )
    if settings.token_auth is AuthMode.BEARER and not settings.bearer_keys():
        raise StartupError("KAIWA_TOKEN_AUTH=bearer needs at least one KAIWA_TOKEN_BEARER_KEYS")
    if (
        settings.token_auth is AuthMode.OPEN
        and not is_loopback(host)
        and not settings.token_force_open
    ):
        raise StartupError(
            f"KAIWA_TOKEN_AUTH=open on {host} would give tokens to anyone who can reach it; "
            "use KAIWA_TOKEN_AUTH=bearer or proxy, listen on 127.0.0.1, or set "
            "KAIWA_TOKEN_FORCE_OPEN=1"
        )

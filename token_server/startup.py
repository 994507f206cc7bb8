"""Refuse to start with a configuration that is unsafe or cannot work."""

from __future__ import annotations

import ipaddress
import re

from token_server import limits
from token_server.auth import parse_bearer_keys
from token_server.devkeys import MIN_SECRET_LENGTH, credential_problem
from token_server.proxies import TrustedProxies
from token_server.readiness import probe_url
from token_server.settings import AuthMode, Settings

__all__ = ["MIN_SECRET_LENGTH", "StartupError", "check_settings", "is_loopback"]

_IDENTITY_RE = re.compile(limits.IDENTITY_PATTERN)


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
    problem = credential_problem(settings.livekit_api_key, secret, dev_mode=settings.dev_mode)
    if problem:
        raise StartupError(problem)
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
    try:
        bearer_keys = parse_bearer_keys(settings.bearer_keys_text())
        proxies = TrustedProxies(settings.trusted_proxies)
    except ValueError as exc:
        raise StartupError(str(exc)) from None
    for name, identities in (
        ("KAIWA_STAFF_IDENTITIES", settings.staff_identities),
        ("KAIWA_PTT_IDENTITIES", settings.ptt_identities),
    ):
        for identity in identities:
            if not _IDENTITY_RE.fullmatch(identity):
                raise StartupError(
                    f"{name}: {identity[:64]!r} is not a valid participant "
                    "identity (A-Z a-z 0-9 _ . @ + : -)"
                )
    if settings.token_auth is AuthMode.BEARER and not bearer_keys:
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
    if settings.token_auth is AuthMode.PROXY and not is_loopback(host) and not proxies.explicit:
        raise StartupError(
            f"KAIWA_TOKEN_AUTH=proxy on {host} needs KAIWA_TRUSTED_PROXIES (the proxy's "
            f"IPs/CIDRs); otherwise anyone reaching {host} could send "
            f"{settings.token_proxy_header} and be that user"
        )

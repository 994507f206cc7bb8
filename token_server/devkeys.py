"""The development credentials kaiwa ships, and the rule that keeps them out of production.

Pure (standard library only, no FastAPI or pydantic): the worker imports the same names
so both processes refuse the same keys.

    from token_server.devkeys import DEV_MODE_ENV, credential_problem
    problem = credential_problem(key, secret, dev_mode=settings.dev_mode)
    if problem: print(f"kaiwa: {problem}", file=sys.stderr); sys.exit(2)

`scripts/run-livekit-server.sh` and `.env.example` repeat the two literals (shell and
dotenv cannot import Python); tests/unit/test_token_devkeys.py keeps them in step.
"""

from __future__ import annotations

from typing import Final

# The environment variable that turns dev mode on (`make run` sets it to 1).
DEV_MODE_ENV: Final = "KAIWA_DEV"

# kaiwa's local key pair: the defaults of the worker, the token server, .env.example and
# scripts/run-livekit-server.sh, so `make run` works without a .env.
DEV_API_KEY: Final = "devkey"
DEV_API_SECRET: Final = "kaiwa-dev-secret-change-me-0123456789abcdef"
# `livekit-server --dev` uses devkey / "secret".
LIVEKIT_DEV_API_SECRET: Final = "secret"

DEV_API_KEYS: Final = frozenset({DEV_API_KEY})
DEV_API_SECRETS: Final = frozenset({DEV_API_SECRET, LIVEKIT_DEV_API_SECRET})

# Shorter secrets are guessable offline from any token (HS256); LiveKit asks for 32+.
MIN_SECRET_LENGTH: Final = 32


def is_dev_credential(key: str | None, secret: str | None) -> bool:
    """True when the key or the secret is one of the published development values."""
    return (key or "") in DEV_API_KEYS or (secret or "") in DEV_API_SECRETS


def credential_problem(key: str | None, secret: str | None, *, dev_mode: bool) -> str | None:
    """One line saying why this key pair must not be used, or None. Never echoes the secret.

    Outside dev mode: no published development key or secret, and a secret of at least
    MIN_SECRET_LENGTH characters. In dev mode only presence is required.
    """
    if not key or not secret:
        return "LIVEKIT_API_KEY and LIVEKIT_API_SECRET must be set (environment or .env)"
    if dev_mode:
        return None
    if is_dev_credential(key, secret):
        return (
            "LIVEKIT_API_KEY/LIVEKIT_API_SECRET are kaiwa's published development "
            "credentials; generate your own (livekit-server generate-keys) or set "
            f"{DEV_MODE_ENV}=1 for local use"
        )
    if len(secret) < MIN_SECRET_LENGTH:
        return (
            f"LIVEKIT_API_SECRET is shorter than {MIN_SECRET_LENGTH} characters; use a "
            f"generated secret (livekit-server generate-keys) or set {DEV_MODE_ENV}=1 for "
            "local use"
        )
    return None

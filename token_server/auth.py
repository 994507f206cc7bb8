"""Who is asking: open, bearer-key or reverse-proxy authentication.

The result also names the client for rate limiting and logs, without ever carrying a
bearer key itself (keys are referred to by a short hash).

KAIWA_TOKEN_BEARER_KEYS format: comma-separated entries, each a key optionally followed
by space-separated options:

    kiosk-7f3a9c, 9c1e0b44d2 identity=alice staff, 51aa07e3 staff

- `identity=<id>`: every token for this key has this participant identity (the client
  may repeat it, not change it), and the per-identity session cap applies to it.
- `staff`: tokens for this key say `kaiwa.role=staff`. Without it, a key's identity is
  staff only if listed in KAIWA_STAFF_IDENTITIES.
- `ptt`: tokens for this key say `kaiwa.turn_mode=push_to_talk`: the device behind it (a
  counter with bystanders) talks to the agent only while its talk key is held. Without
  it, a key's identity is push-to-talk only if listed in KAIWA_PTT_IDENTITIES.

A plain key (the old format) parses as before: RFC 6750 bearer tokens cannot contain
spaces or commas, so a space always starts an option. In a .env file sourced by a shell,
quote a value that contains spaces.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from token_server import limits
from token_server.errors import ApiError
from token_server.settings import AuthMode, Settings

_IDENTITY_RE = re.compile(limits.IDENTITY_PATTERN)


@dataclass(frozen=True, slots=True)
class BearerKey:
    key: bytes = field(repr=False)
    identity: str | None = None
    staff: bool = False
    push_to_talk: bool = False

    @property
    def fingerprint(self) -> str:
        return _fingerprint(self.key)


def parse_bearer_keys(text: str) -> list[BearerKey]:
    """Parse KAIWA_TOKEN_BEARER_KEYS. Raises ValueError whose message names the entry by
    position, never by content (it would be a secret)."""
    keys: list[BearerKey] = []
    seen: set[bytes] = set()
    for number, entry in enumerate(text.split(","), start=1):
        words = entry.split()
        if not words:
            continue
        key, options = words[0].encode(), words[1:]
        identity: str | None = None
        staff = push_to_talk = False
        for position, option in enumerate(options, start=1):
            if option == "staff":
                staff = True
            elif option == "ptt":
                push_to_talk = True
            elif option.startswith("identity=") and identity is None:
                identity = option.removeprefix("identity=")
                if not identity or not _IDENTITY_RE.fullmatch(identity):
                    raise ValueError(
                        f"KAIWA_TOKEN_BEARER_KEYS entry {number}: identity= must be 1-"
                        f"{limits.IDENTITY_MAX} characters of A-Z a-z 0-9 _ . @ + : -"
                    )
            else:
                raise ValueError(
                    f"KAIWA_TOKEN_BEARER_KEYS entry {number}: option {position} is not "
                    "'identity=<id>', 'staff' or 'ptt' (a key cannot contain spaces)"
                )
        if key in seen:
            raise ValueError(f"KAIWA_TOKEN_BEARER_KEYS entry {number} repeats an earlier key")
        seen.add(key)
        keys.append(BearerKey(key=key, identity=identity, staff=staff, push_to_talk=push_to_talk))
    return keys


@dataclass(frozen=True, slots=True)
class Principal:
    client_key: str  # rate-limit bucket and log label; never a secret
    # Set when authentication fixed the participant identity (proxy user, bearer key with
    # identity=): it becomes the identity and may make the caller staff.
    identity: str | None = None
    staff: bool = False  # a bearer key marked staff
    push_to_talk: bool = False  # a bearer key marked ptt


def _fingerprint(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:12]


class Authenticator:
    def __init__(self, settings: Settings) -> None:
        self.mode = settings.token_auth
        self._keys = parse_bearer_keys(settings.bearer_keys_text())
        self._proxy_header = settings.token_proxy_header.lower()

    def authenticate(
        self, headers: Mapping[str, str], client_ip: str, *, from_trusted_proxy: bool = False
    ) -> Principal:
        """Raise ApiError(401) unless the request is authenticated.

        `from_trusted_proxy`: the TCP peer is in KAIWA_TRUSTED_PROXIES. Proxy mode refuses
        everyone else: their identity header is whatever they chose to send.
        """
        if self.mode is AuthMode.BEARER:
            return self._bearer(headers.get("authorization", ""))
        if self.mode is AuthMode.PROXY:
            if not from_trusted_proxy:
                raise ApiError(401, "unauthorized", "requests must come through the trusted proxy")
            user = headers.get(self._proxy_header, "").strip()
            if not user:
                raise ApiError(401, "unauthorized", "no authenticated user from the proxy")
            return Principal(client_key=f"user:{user[:128]}", identity=user)
        return Principal(client_key=f"ip:{client_ip}")

    def _bearer(self, header: str) -> Principal:
        scheme, _, presented = header.partition(" ")
        challenge = {"WWW-Authenticate": 'Bearer realm="kaiwa"'}
        if scheme.lower() != "bearer" or not presented.strip():
            raise ApiError(401, "unauthorized", "a bearer key is required", challenge)
        candidate = presented.strip().encode()
        # Compare against every key (no early exit) so timing does not reveal which matched.
        match: BearerKey | None = None
        for entry in self._keys:
            if hmac.compare_digest(candidate, entry.key):
                match = entry
        if match is None:
            challenge["WWW-Authenticate"] += ', error="invalid_token"'
            raise ApiError(401, "unauthorized", "the bearer key is not valid", challenge)
        return Principal(
            client_key=f"key:{match.fingerprint}",
            identity=match.identity,
            staff=match.staff,
            push_to_talk=match.push_to_talk,
        )

"""Who is asking: open, bearer-key or reverse-proxy authentication.

The result also names the client for rate limiting and logs, without ever carrying a
bearer key itself (keys are referred to by a short hash).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from token_server.errors import ApiError
from token_server.settings import AuthMode, Settings


@dataclass(frozen=True, slots=True)
class Principal:
    client_key: str  # rate-limit bucket and log label; never a secret
    identity: str | None = None  # set in proxy mode: becomes the participant identity


def _fingerprint(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:12]


class Authenticator:
    def __init__(self, settings: Settings) -> None:
        self.mode = settings.token_auth
        self._keys = [k.encode() for k in settings.bearer_keys()]
        self._proxy_header = settings.token_proxy_header.lower()

    def authenticate(self, headers: Mapping[str, str], client_ip: str) -> Principal:
        """Raise ApiError(401) unless the request is authenticated."""
        if self.mode is AuthMode.BEARER:
            return self._bearer(headers.get("authorization", ""))
        if self.mode is AuthMode.PROXY:
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
        match: bytes | None = None
        for key in self._keys:
            if hmac.compare_digest(candidate, key):
                match = key
        if match is None:
            challenge["WWW-Authenticate"] += ', error="invalid_token"'
            raise ApiError(401, "unauthorized", "the bearer key is not valid", challenge)
        return Principal(client_key=f"key:{_fingerprint(match)}")

"""Readiness: can we reach the LiveKit server the tokens are for?"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import httpx

_SCHEMES = {"ws": "http", "wss": "https", "http": "http", "https": "https"}


def probe_url(livekit_url: str) -> str:
    """ws(s)://host:port/... -> http(s)://host:port/ (livekit-server answers "OK" there)."""
    parts = urlsplit(livekit_url)
    scheme = _SCHEMES.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise ValueError(f"not a ws://, wss://, http:// or https:// URL: {livekit_url!r}")
    return urlunsplit((scheme, parts.netloc, "/", "", ""))


class LiveKitProbe:
    """One short GET; any HTTP answer below 500 counts as reachable."""

    def __init__(self, livekit_url: str, timeout: float = 1.5) -> None:
        self.url = probe_url(livekit_url)
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)

    async def __call__(self) -> str | None:
        """None when ready, else a short human reason."""
        try:
            response = await self._client.get(self.url)
        except httpx.HTTPError as exc:
            return f"LiveKit server at {self.url} is not reachable ({type(exc).__name__})"
        if response.status_code >= 500:
            return f"LiveKit server at {self.url} answered {response.status_code}"
        return None

    async def aclose(self) -> None:
        await self._client.aclose()

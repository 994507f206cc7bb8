"""Typed token-server settings, read from the environment and `.env`.

Every field names its environment variable explicitly (`validation_alias`) so the
names match `.env.example` exactly; `token_server/ENV.md` lists them with defaults.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from token_server.devkeys import DEV_API_KEY, DEV_API_SECRET, DEV_MODE_ENV

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WEB_DIR = REPO_ROOT / "web" / "dist"

# A comma-separated env value; NoDecode stops pydantic-settings from expecting JSON.
CommaList = Annotated[list[str], NoDecode]


class AuthMode(StrEnum):
    OPEN = "open"
    BEARER = "bearer"
    PROXY = "proxy"


def _split_commas(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Token-server configuration. Field names are for code; env names are the aliases."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        case_sensitive=False,
    )

    livekit_url: str = Field(
        default="ws://127.0.0.1:7880",
        validation_alias=AliasChoices("LIVEKIT_URL", "livekit_url"),
        description="LiveKit server URL (ws:// or wss://). Used for the readiness probe and, "
        "unless KAIWA_PUBLIC_LIVEKIT_URL is set, returned to clients as server_url.",
    )
    public_livekit_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("KAIWA_PUBLIC_LIVEKIT_URL", "public_livekit_url"),
        description="URL clients should connect to (e.g. wss://rtc.example.com) when it "
        "differs from LIVEKIT_URL (which may be an internal address).",
    )
    # Defaults are the published dev keys (token_server/devkeys.py), shared with
    # scripts/run-livekit-server.sh and the worker, so `make run` works without a .env.
    # Outside dev mode (KAIWA_DEV) the startup check refuses them.
    livekit_api_key: str | None = Field(
        default=DEV_API_KEY,
        validation_alias=AliasChoices("LIVEKIT_API_KEY", "livekit_api_key"),
        description="LiveKit API key; the token's issuer. Required.",
    )
    livekit_api_secret: SecretStr | None = Field(
        default=SecretStr(DEV_API_SECRET),
        validation_alias=AliasChoices("LIVEKIT_API_SECRET", "livekit_api_secret"),
        description="LiveKit API secret that signs tokens. Required; at least 32 characters "
        "and not a published dev secret unless dev mode is on. Never logged or returned.",
    )
    agent_name: str = Field(
        default="kaiwa",
        validation_alias=AliasChoices("KAIWA_AGENT_NAME", "agent_name"),
        description="Agent dispatched into a new room when the client names none.",
    )
    allowed_agent_names: CommaList = Field(
        default_factory=list,
        validation_alias=AliasChoices("KAIWA_ALLOWED_AGENT_NAMES", "allowed_agent_names"),
        description="Comma list of agent names clients may request. Default: KAIWA_AGENT_NAME.",
    )
    token_host: str = Field(
        default="127.0.0.1",
        validation_alias=AliasChoices("KAIWA_TOKEN_HOST", "token_host"),
        description="Interface the token server listens on.",
    )
    token_port: int = Field(
        default=8080,
        ge=1,
        le=65535,
        validation_alias=AliasChoices("KAIWA_TOKEN_PORT", "token_port"),
        description="TCP port the token server listens on.",
    )
    token_ttl_seconds: int = Field(
        default=900,
        ge=10,
        validation_alias=AliasChoices("KAIWA_TOKEN_TTL_SECONDS", "token_ttl_seconds"),
        description="Lifetime of issued tokens (only joining needs a valid token; a "
        "connected session outlives it).",
    )
    token_max_ttl_seconds: int = Field(
        default=3600,
        ge=10,
        validation_alias=AliasChoices("KAIWA_TOKEN_MAX_TTL_SECONDS", "token_max_ttl_seconds"),
        description="Upper bound for any token lifetime; KAIWA_TOKEN_TTL_SECONDS is capped to it.",
    )
    token_auth: AuthMode = Field(
        default=AuthMode.OPEN,
        validation_alias=AliasChoices("KAIWA_TOKEN_AUTH", "token_auth"),
        description="Who may get a token: open (anyone; loopback only unless forced), bearer "
        "(Authorization: Bearer <key>), proxy (identity header set by a reverse proxy).",
    )
    token_bearer_keys: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("KAIWA_TOKEN_BEARER_KEYS", "token_bearer_keys"),
        description="Comma list of accepted bearer keys (KAIWA_TOKEN_AUTH=bearer). Each "
        "entry is a key, optionally followed by space-separated options: identity=<id> "
        "(every token for this key has that identity) and staff (kaiwa.role=staff).",
    )
    token_proxy_header: str = Field(
        default="X-Forwarded-User",
        validation_alias=AliasChoices("KAIWA_TOKEN_PROXY_HEADER", "token_proxy_header"),
        description="Header carrying the authenticated user (KAIWA_TOKEN_AUTH=proxy); it "
        "becomes the participant identity. Believed only from KAIWA_TRUSTED_PROXIES.",
    )
    trusted_proxies: CommaList = Field(
        default_factory=list,
        validation_alias=AliasChoices("KAIWA_TRUSTED_PROXIES", "trusted_proxies"),
        description="Comma list of reverse-proxy IPs/CIDRs whose X-Forwarded-For and "
        "identity header are believed. Empty: loopback only (a proxy on this host).",
    )
    staff_identities: CommaList = Field(
        default_factory=list,
        validation_alias=AliasChoices("KAIWA_STAFF_IDENTITIES", "staff_identities"),
        description="Comma list of authenticated identities (proxy user or bearer key "
        "identity) whose tokens say kaiwa.role=staff. Everyone else is a caller.",
    )
    ptt_identities: CommaList = Field(
        default_factory=list,
        validation_alias=AliasChoices("KAIWA_PTT_IDENTITIES", "ptt_identities"),
        description="Comma list of authenticated identities (a reception counter's proxy "
        "user or bearer key identity) whose tokens say kaiwa.turn_mode=push_to_talk: the "
        "agent hears them only while their talk key is held. Bearer keys can say `ptt`.",
    )
    max_sessions_per_identity: int = Field(
        default=3,
        ge=0,
        validation_alias=AliasChoices(
            "KAIWA_MAX_SESSIONS_PER_IDENTITY", "max_sessions_per_identity"
        ),
        description="Live sessions (rooms) one authenticated or client-chosen identity may "
        "hold at once; 0 = no cap. Counted from livekit-server; 429 over it.",
    )
    token_force_open: bool = Field(
        default=False,
        validation_alias=AliasChoices("KAIWA_TOKEN_FORCE_OPEN", "token_force_open"),
        description="Allow KAIWA_TOKEN_AUTH=open on a non-loopback host (anyone who can "
        "reach the port gets tokens).",
    )
    allow_client_room_names: bool = Field(
        default=False,
        validation_alias=AliasChoices("KAIWA_ALLOW_CLIENT_ROOM_NAMES", "allow_client_room_names"),
        description="Let clients choose the room name (validated); otherwise the server "
        "makes a fresh kaiwa-<random> room per request.",
    )
    allow_client_identities: bool = Field(
        default=False,
        validation_alias=AliasChoices("KAIWA_ALLOW_CLIENT_IDENTITIES", "allow_client_identities"),
        description="Let clients choose their participant identity (validated); otherwise "
        "the server makes user-<random> (or uses the proxy identity).",
    )
    token_rate: float = Field(
        default=5.0,
        gt=0,
        validation_alias=AliasChoices("KAIWA_TOKEN_RATE", "token_rate"),
        description="Sustained token requests per second per client (bearer key, proxy "
        "identity or remote IP).",
    )
    token_burst: int = Field(
        default=20,
        ge=1,
        validation_alias=AliasChoices("KAIWA_TOKEN_BURST", "token_burst"),
        description="Requests a client may make in a burst before KAIWA_TOKEN_RATE applies.",
    )
    token_max_body_bytes: int = Field(
        default=16384,
        ge=256,
        validation_alias=AliasChoices("KAIWA_TOKEN_MAX_BODY_BYTES", "token_max_body_bytes"),
        description="Largest accepted request body; bigger bodies get 413.",
    )
    cors_origins: CommaList = Field(
        default_factory=list,
        validation_alias=AliasChoices("KAIWA_CORS_ORIGINS", "cors_origins"),
        description="Comma list of origins allowed to call the API from a browser. Empty: "
        "same-origin only (no CORS headers).",
    )
    web_dir: Path = Field(
        default=DEFAULT_WEB_DIR,
        validation_alias=AliasChoices("KAIWA_WEB_DIR", "web_dir"),
        description="Directory of the built web page served at /.",
    )
    dev_mode: bool = Field(
        default=False,
        # One name only. Not LIVEKIT_DEV_MODE: the agents CLI sets that as a side effect
        # of `dev`/`console`, and it must not relax a production token server's checks.
        validation_alias=AliasChoices(DEV_MODE_ENV, "dev_mode"),
        description="Development mode: allows the published dev key/secret and secrets "
        "shorter than 32 characters. `make run` sets it; production must not.",
    )

    _split = field_validator(
        "allowed_agent_names",
        "cors_origins",
        "trusted_proxies",
        "staff_identities",
        "ptt_identities",
        mode="before",
    )(_split_commas)

    @field_validator("web_dir", "public_livekit_url", mode="before")
    @classmethod
    def _blank_is_default(cls, v: object, info: Any) -> object:
        # `KAIWA_WEB_DIR=` (as in .env.example) must mean "the default", never Path("")
        # — that would serve the working directory, .env included.
        if isinstance(v, str) and not v.strip():
            return DEFAULT_WEB_DIR if info.field_name == "web_dir" else None
        return v

    @model_validator(mode="after")
    def _default_allow_list(self) -> Settings:
        # The configured agent is always dispatchable; listing others is opt-in.
        if not self.allowed_agent_names:
            self.allowed_agent_names = [self.agent_name]
        return self

    @property
    def client_livekit_url(self) -> str:
        """The server_url handed to clients."""
        return self.public_livekit_url or self.livekit_url

    def bearer_keys_text(self) -> str:
        """The raw KAIWA_TOKEN_BEARER_KEYS value (parse with auth.parse_bearer_keys)."""
        if self.token_bearer_keys is None:
            return ""
        return self.token_bearer_keys.get_secret_value()

"""Token policy: who gets which grant. Pure (no I/O, no web framework).

`decide(request, config)` turns a parsed `TokenRequest` into either a `Decision`
(identity, role, room, grants, agent dispatch, TTL) or a `Refusal` (error code, HTTP
status, human detail). Everything a client can influence passes through here, so the
invariants the token must satisfy are checked in one place and property-tested.

What a client may send (LiveKit `TokenSourceRequest`) and what happens to it:
- participant_name: display name, length-limited.
- participant_identity / room_name: refused unless the deployment allows them.
- participant_metadata: accepted as an opaque, size-limited string; kaiwa never trusts it.
- participant_attributes: accepted except `lk.*` and `kaiwa.*` keys (403): the server
  writes `kaiwa.role` and `kaiwa.channel` itself.
- room_config: only `agents[0].agent_name` from the allow-list; agent dispatch metadata,
  deployment and every other RoomConfiguration field are refused (403).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from token_server import limits
from token_server.models import AgentDispatchRequest, TokenRequest
from token_server.roles import (
    CHANNEL_ATTRIBUTE,
    PUSH_TO_TALK,
    RESERVED_ATTRIBUTE_PREFIXES,
    ROLE_ATTRIBUTE,
    TURN_MODE_ATTRIBUTE,
    Channel,
    Role,
    is_reserved_attribute,
)

# Sources an end user may publish; deliberately excludes e.g. "unknown".
PUBLISH_SOURCES: Final = ("microphone", "camera", "screen_share", "screen_share_audio")

_ROOM_NAME_RE = re.compile(limits.ROOM_NAME_PATTERN)
_IDENTITY_RE = re.compile(limits.IDENTITY_PATTERN)
_ATTRIBUTE_KEY_RE = re.compile(limits.ATTRIBUTE_KEY_PATTERN)


class RefusalCode(StrEnum):
    ROOM_NAME_NOT_ALLOWED = "room_name_not_allowed"
    INVALID_ROOM_NAME = "invalid_room_name"
    IDENTITY_NOT_ALLOWED = "identity_not_allowed"
    INVALID_IDENTITY = "invalid_identity"
    PARTICIPANT_NAME_TOO_LONG = "participant_name_too_long"
    METADATA_TOO_LARGE = "metadata_too_large"
    ATTRIBUTES_TOO_LARGE = "attributes_too_large"
    INVALID_ATTRIBUTE_KEY = "invalid_attribute_key"
    RESERVED_ATTRIBUTE = "reserved_attribute"
    ROOM_CONFIG_FIELD_NOT_ALLOWED = "room_config_field_not_allowed"
    TOO_MANY_AGENTS = "too_many_agents"
    AGENT_NOT_ALLOWED = "agent_not_allowed"


@dataclass(frozen=True, slots=True)
class Refusal:
    code: RefusalCode
    detail: str
    # 403 for "not permitted here", 400 for "malformed"; see _FORBIDDEN.
    status: int


# 403: the request is well-formed but this deployment does not permit it.
_FORBIDDEN: Final = frozenset(
    {
        RefusalCode.ROOM_NAME_NOT_ALLOWED,
        RefusalCode.IDENTITY_NOT_ALLOWED,
        RefusalCode.RESERVED_ATTRIBUTE,
        RefusalCode.ROOM_CONFIG_FIELD_NOT_ALLOWED,
        RefusalCode.AGENT_NOT_ALLOWED,
    }
)


def _refuse(code: RefusalCode, detail: str) -> Refusal:
    return Refusal(code=code, detail=detail, status=403 if code in _FORBIDDEN else 400)


@dataclass(frozen=True, slots=True)
class Grants:
    """The video grant of an end-user token. Admin-type grants are not representable."""

    room: str
    room_join: bool = True
    can_subscribe: bool = True
    can_publish: bool = True
    can_publish_data: bool = True  # lk.chat text and RPC need it
    can_publish_sources: tuple[str, ...] = PUBLISH_SOURCES


@dataclass(frozen=True, slots=True)
class AgentDispatch:
    agent_name: str
    metadata: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    identity: str
    name: str
    room: str
    grants: Grants
    agents: tuple[AgentDispatch, ...]
    ttl_seconds: int
    role: Role = Role.CALLER
    channel: Channel = Channel.LIVEKIT_CLIENT
    # True when the server made the identity up for this request (fresh, so it cannot
    # hold other sessions); False for authenticated or client-chosen identities.
    generated_identity: bool = True
    metadata: str = ""
    # Everything signed into the token: the client's plus kaiwa.role and kaiwa.channel.
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """The deployment's choices (built from Settings by the app)."""

    default_agent: str
    allowed_agents: frozenset[str]
    ttl_seconds: int = 900
    max_ttl_seconds: int = 3600
    allow_client_room_names: bool = False
    allow_client_identities: bool = False
    # Authenticated identities whose tokens say kaiwa.role=staff.
    staff_identities: frozenset[str] = frozenset()
    # Authenticated identities whose tokens say kaiwa.turn_mode=push_to_talk.
    ptt_identities: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        # Keeps "only allow-listed agents are ever dispatched" true for the default too.
        if self.default_agent not in self.allowed_agents:
            raise ValueError("default_agent must be in allowed_agents")


def _random_suffix() -> str:
    return secrets.token_hex(6)


Result = Decision | Refusal


def decide(
    request: TokenRequest,
    config: PolicyConfig,
    *,
    authenticated_identity: str | None = None,
    staff_credential: bool = False,
    push_to_talk_credential: bool = False,
    channel: Channel = Channel.LIVEKIT_CLIENT,
    new_suffix: Callable[[], str] = _random_suffix,
) -> Result:
    """Judge one token request.

    `authenticated_identity` comes from the auth layer (proxy user, bearer key with a
    fixed identity) and wins over anything the client says. `staff_credential`: the
    request authenticated with a bearer key marked staff. `channel` is where the request
    came from (a hint, see roles.Channel). `new_suffix` makes generated names
    deterministic in tests.

    Role: staff only for an authenticated identity listed in `config.staff_identities`
    or a staff credential; everyone else, including every client-chosen identity, is a
    caller.
    """
    room = _room(request.room_name, config, new_suffix)
    if isinstance(room, Refusal):
        return room
    identity = _identity(request.participant_identity, config, authenticated_identity, new_suffix)
    if isinstance(identity, Refusal):
        return identity

    name = request.participant_name or ""
    if len(name) > limits.PARTICIPANT_NAME_MAX:
        return _refuse(
            RefusalCode.PARTICIPANT_NAME_TOO_LONG,
            f"participant_name is longer than {limits.PARTICIPANT_NAME_MAX} characters",
        )

    metadata = request.participant_metadata or ""
    if len(metadata) > limits.METADATA_MAX_CHARS:
        return _refuse(
            RefusalCode.METADATA_TOO_LARGE,
            f"participant_metadata is longer than {limits.METADATA_MAX_CHARS} characters",
        )

    attributes = _attributes(request.participant_attributes or {})
    if isinstance(attributes, Refusal):
        return attributes

    agents = _agents(request, config)
    if isinstance(agents, Refusal):
        return agents

    staff = staff_credential or (
        authenticated_identity is not None and authenticated_identity in config.staff_identities
    )
    role = Role.STAFF if staff else Role.CALLER
    # Server-set keys last: the client's cannot contain kaiwa.* (refused above), and
    # even if that check regressed these would still win.
    attributes[ROLE_ATTRIBUTE] = role.value
    attributes[CHANNEL_ATTRIBUTE] = channel.value
    if push_to_talk_credential or (
        authenticated_identity is not None and authenticated_identity in config.ptt_identities
    ):
        attributes[TURN_MODE_ATTRIBUTE] = PUSH_TO_TALK

    return Decision(
        identity=identity,
        name=name or identity,
        room=room,
        grants=Grants(room=room),
        agents=agents,
        ttl_seconds=max(1, min(config.ttl_seconds, config.max_ttl_seconds)),
        role=role,
        channel=channel,
        generated_identity=authenticated_identity is None and not request.participant_identity,
        metadata=metadata,
        attributes=attributes,
    )


def _room(
    requested: str | None, config: PolicyConfig, new_suffix: Callable[[], str]
) -> str | Refusal:
    # Empty string means "not set", as in protobuf JSON.
    if not requested:
        # A fresh room per session: token dispatch only fires when the join creates it.
        return f"kaiwa-{new_suffix()}"
    if not config.allow_client_room_names:
        return _refuse(
            RefusalCode.ROOM_NAME_NOT_ALLOWED,
            "this server chooses room names; omit room_name",
        )
    if not _ROOM_NAME_RE.fullmatch(requested):
        return _refuse(
            RefusalCode.INVALID_ROOM_NAME,
            f"room_name must be 1-{limits.ROOM_NAME_MAX} characters of A-Z a-z 0-9 _ . -",
        )
    return requested


def _identity(
    requested: str | None,
    config: PolicyConfig,
    authenticated: str | None,
    new_suffix: Callable[[], str],
) -> str | Refusal:
    if authenticated is not None:
        if requested and requested != authenticated:
            return _refuse(
                RefusalCode.IDENTITY_NOT_ALLOWED,
                "participant_identity must match the authenticated user",
            )
        if not authenticated or not _IDENTITY_RE.fullmatch(authenticated):
            return _refuse(
                RefusalCode.INVALID_IDENTITY,
                "the authenticated user name is not a valid participant identity",
            )
        return authenticated
    if not requested:
        return f"user-{new_suffix()}"
    if not config.allow_client_identities:
        return _refuse(
            RefusalCode.IDENTITY_NOT_ALLOWED,
            "this server chooses participant identities; omit participant_identity",
        )
    if not _IDENTITY_RE.fullmatch(requested):
        return _refuse(
            RefusalCode.INVALID_IDENTITY,
            f"participant_identity must be 1-{limits.IDENTITY_MAX} characters of "
            "A-Z a-z 0-9 _ . @ + : -",
        )
    return requested


def _attributes(attributes: Mapping[str, str]) -> dict[str, str] | Refusal:
    if len(attributes) > limits.ATTRIBUTES_MAX_COUNT:
        return _refuse(
            RefusalCode.ATTRIBUTES_TOO_LARGE,
            f"at most {limits.ATTRIBUTES_MAX_COUNT} participant_attributes",
        )
    total = 0
    for key, value in attributes.items():
        if not _ATTRIBUTE_KEY_RE.fullmatch(key):
            return _refuse(
                RefusalCode.INVALID_ATTRIBUTE_KEY,
                f"attribute keys must be 1-{limits.ATTRIBUTE_KEY_MAX} characters of "
                "A-Z a-z 0-9 _ . : -",
            )
        if is_reserved_attribute(key):
            return _refuse(
                RefusalCode.RESERVED_ATTRIBUTE,
                "attribute keys starting with "
                + " or ".join(f"'{p}'" for p in RESERVED_ATTRIBUTE_PREFIXES)
                + " are set by the server (LiveKit, kaiwa), not by clients",
            )
        if len(value) > limits.ATTRIBUTE_VALUE_MAX_CHARS:
            return _refuse(
                RefusalCode.ATTRIBUTES_TOO_LARGE,
                f"attribute values are limited to {limits.ATTRIBUTE_VALUE_MAX_CHARS} characters",
            )
        total += len(key.encode()) + len(value.encode("utf-8", "surrogatepass"))
    if total > limits.ATTRIBUTES_MAX_TOTAL_BYTES:
        return _refuse(
            RefusalCode.ATTRIBUTES_TOO_LARGE,
            f"participant_attributes exceed {limits.ATTRIBUTES_MAX_TOTAL_BYTES} bytes in total",
        )
    return dict(attributes)


def _agents(request: TokenRequest, config: PolicyConfig) -> tuple[AgentDispatch, ...] | Refusal:
    room_config = request.room_config
    requested: list[AgentDispatchRequest] = []
    if room_config is not None:
        # Egress, timeouts, participant limits, presets, ... would let a client spend
        # server resources or change room behaviour; only agent dispatch is allowed.
        extra = sorted((room_config.model_extra or {}).keys())
        if extra:
            return _refuse(
                RefusalCode.ROOM_CONFIG_FIELD_NOT_ALLOWED,
                "room_config may only contain 'agents'; refused: " + _names(extra),
            )
        requested = room_config.agents or []
    if len(requested) > limits.MAX_AGENT_DISPATCHES:
        return _refuse(
            RefusalCode.TOO_MANY_AGENTS,
            f"at most {limits.MAX_AGENT_DISPATCHES} agent per room",
        )
    if not requested:
        return (AgentDispatch(agent_name=config.default_agent),)

    entry = requested[0]
    # Only agent_name. Empty strings count as absent (protobuf JSON omits defaults, but
    # hand-written clients send them). Dispatch metadata would become the job's metadata,
    # which the worker believes (crash recovery reads it); deployment is LiveKit Cloud's.
    extra = sorted((entry.model_extra or {}).keys())
    if entry.metadata:
        extra.insert(0, "metadata")
    if entry.deployment:
        extra.insert(0, "deployment")
    if extra:
        return _refuse(
            RefusalCode.ROOM_CONFIG_FIELD_NOT_ALLOWED,
            "room_config.agents[] may only contain agent_name; refused: " + _names(extra),
        )
    agent_name = entry.agent_name or config.default_agent
    if agent_name not in config.allowed_agents:
        return _refuse(
            RefusalCode.AGENT_NOT_ALLOWED,
            "this server does not dispatch the requested agent",
        )
    return (AgentDispatch(agent_name=agent_name),)


def _names(keys: list[str]) -> str:
    # Echo at most a few short names: the detail must stay small and log-safe.
    shown = [repr(k[:32]) for k in keys[:5]]
    return ", ".join(shown) + (" ..." if len(keys) > 5 else "")

"""Wire models: what clients send and what the server answers.

The request mirrors LiveKit's `TokenSourceRequest` (proto field names, snake_case);
camelCase aliases are accepted because protobuf JSON readers accept both and some SDKs
or hand-written clients send them. Types are checked here; values (lengths, patterns,
allow-lists) are judged by `policy.py` so refusals carry specific error codes. The
limits are still published in the JSON schema via `WithJsonSchema`, so the OpenAPI spec
states what the server accepts.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, WithJsonSchema

from token_server import limits


def _string(max_length: int, pattern: str | None = None) -> WithJsonSchema:
    schema: dict[str, Any] = {"type": "string", "maxLength": max_length}
    if pattern:
        schema["pattern"] = pattern
    return WithJsonSchema(schema)


def _alias(snake: str, camel: str) -> AliasChoices:
    return AliasChoices(snake, camel)


RoomName = Annotated[str, _string(limits.ROOM_NAME_MAX, limits.ROOM_NAME_PATTERN)]
Identity = Annotated[str, _string(limits.IDENTITY_MAX, limits.IDENTITY_PATTERN)]
DisplayName = Annotated[str, _string(limits.PARTICIPANT_NAME_MAX)]
Metadata = Annotated[str, _string(limits.METADATA_MAX_CHARS)]
AgentName = Annotated[str, _string(limits.AGENT_NAME_MAX)]
AgentMetadata = Annotated[str, _string(limits.AGENT_METADATA_MAX_CHARS)]
Deployment = Annotated[str, _string(limits.DEPLOYMENT_MAX)]
Attributes = Annotated[
    dict[str, str],
    WithJsonSchema(
        {
            "type": "object",
            "maxProperties": limits.ATTRIBUTES_MAX_COUNT,
            "propertyNames": {"pattern": limits.ATTRIBUTE_KEY_PATTERN},
            "additionalProperties": {
                "type": "string",
                "maxLength": limits.ATTRIBUTE_VALUE_MAX_CHARS,
            },
            "description": "Keys starting with "
            + " or ".join(f"'{p}'" for p in limits.RESERVED_ATTRIBUTE_PREFIXES)
            + " (any case) are set by the server and refused here (403); at most "
            f"{limits.ATTRIBUTES_MAX_TOTAL_BYTES} UTF-8 bytes in all.",
        }
    ),
]


class AgentDispatchRequest(BaseModel):
    """One entry of `room_config.agents` (LiveKit `RoomAgentDispatch`)."""

    # Unknown keys are kept so the policy can refuse them by name (403) rather than
    # silently dropping a field the client believes took effect.
    model_config = ConfigDict(extra="allow", json_schema_extra={"additionalProperties": False})

    agent_name: AgentName | None = Field(
        default=None,
        validation_alias=_alias("agent_name", "agentName"),
        description="Agent to dispatch; must be on the server's allow-list. Empty: default.",
    )
    metadata: AgentMetadata | None = Field(
        default=None,
        description="Job metadata: set by the server only. Empty or absent; anything else "
        "is refused (403).",
    )
    deployment: Deployment | None = Field(
        default=None,
        description="LiveKit Cloud deployment selector: empty or absent; anything else is "
        "refused (403).",
    )


class RoomConfigRequest(BaseModel):
    """`room_config` (LiveKit `RoomConfiguration`): clients may only ask for an agent."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"additionalProperties": False})

    agents: list[AgentDispatchRequest] | None = Field(
        default=None,
        json_schema_extra={"maxItems": limits.MAX_AGENT_DISPATCHES},
        description="Agent dispatch; any other RoomConfiguration field is refused (403).",
    )


class TokenRequest(BaseModel):
    """Body of POST /token (LiveKit `TokenSourceRequest`); every field is optional."""

    model_config = ConfigDict(extra="ignore")

    room_name: RoomName | None = Field(
        default=None,
        validation_alias=_alias("room_name", "roomName"),
        description="Room to join; only honoured when the server allows client room names "
        "(403 otherwise). Default: a fresh server-generated room.",
    )
    participant_name: DisplayName | None = Field(
        default=None,
        validation_alias=_alias("participant_name", "participantName"),
        description="Display name.",
    )
    participant_identity: Identity | None = Field(
        default=None,
        validation_alias=_alias("participant_identity", "participantIdentity"),
        description="Identity; only honoured when the server allows client identities "
        "(403 otherwise). Default: server-generated.",
    )
    participant_metadata: Metadata | None = Field(
        default=None,
        validation_alias=_alias("participant_metadata", "participantMetadata"),
        description="Participant metadata (opaque string, signed as sent). kaiwa never "
        "trusts it: who is talking is in the server-set kaiwa.* attributes.",
    )
    participant_attributes: Attributes | None = Field(
        default=None,
        validation_alias=_alias("participant_attributes", "participantAttributes"),
        description="Participant attributes (the server adds kaiwa.role and kaiwa.channel).",
    )
    room_config: RoomConfigRequest | None = Field(
        default=None, validation_alias=_alias("room_config", "roomConfig")
    )


class TokenResponse(BaseModel):
    """LiveKit `TokenSourceResponse`, snake_case (the only shape Swift decodes)."""

    server_url: str = Field(description="LiveKit server URL to connect to.")
    participant_token: str = Field(description="Signed LiveKit access token (JWT).")
    room_name: str
    participant_name: str
    participant_identity: str


class ConnectionDetails(BaseModel):
    """The older agent-starter-react `/api/connection-details` answer (camelCase)."""

    # Wire names of the starter, hence camelCase.
    serverUrl: str
    roomName: str
    participantName: str
    participantToken: str


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer."""

    error: str = Field(description="Stable machine-readable code, e.g. agent_not_allowed.")
    detail: str = Field(description="Human-readable explanation.")


class HealthBody(BaseModel):
    status: str

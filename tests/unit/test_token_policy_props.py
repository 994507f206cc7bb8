"""Property tests for the pure policy: random input never crashes, and every accepted
decision (and the JWT minted from it) satisfies the token invariants."""

from __future__ import annotations

import re
from typing import Any

import jwt
from hypothesis import HealthCheck, currently_in_test_context, event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from token_server import limits
from token_server.models import TokenRequest
from token_server.policy import PUBLISH_SOURCES, Decision, PolicyConfig, Refusal, decide
from token_server.roles import CHANNEL_ATTRIBUTE, ROLE_ATTRIBUTE, Channel, Role
from token_server.tokens import TokenMinter

SECRET = "p" * 40
MINTER = TokenMinter("key", SECRET)
AGENT_NAMES = ["kaiwa", "helper", "Kaiwa", "", "evil", "kaiwa ", "lk.agent"]
ALLOWED_VIDEO_CLAIMS = {
    "roomJoin",
    "room",
    "canPublish",
    "canSubscribe",
    "canPublishData",
    "canPublishSources",
}

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)

names = st.text(max_size=80) | st.from_regex(r"[A-Za-z0-9_.-]{1,70}", fullmatch=True)
agent_entry = st.fixed_dictionaries(
    {},
    optional={
        "agent_name": st.sampled_from(AGENT_NAMES) | st.text(max_size=10),
        "agentName": st.sampled_from(AGENT_NAMES),
        "metadata": st.text(max_size=50) | st.just("m" * (limits.AGENT_METADATA_MAX_CHARS + 1)),
        "deployment": st.text(max_size=10),
        "restart_policy": json_values,
    },
)
room_config = st.fixed_dictionaries(
    {},
    optional={
        "agents": st.lists(agent_entry, max_size=3) | json_values,
        "egress": json_values,
        "empty_timeout": st.integers(),
        "max_participants": st.integers(),
        "metadata": st.text(max_size=5),
    },
)
attributes = st.dictionaries(
    st.text(max_size=70)
    | st.sampled_from(
        ["lk.agent.state", "lang", "a:b", "x.y-z", "kaiwa.role", "Kaiwa.Role", "kaiwa.channel"]
    ),
    st.text(max_size=30) | st.just("v" * 1100),
    max_size=20,
)
request_dicts = st.fixed_dictionaries(
    {},
    optional={
        "room_name": names,
        "roomName": names,
        "participant_name": st.text(max_size=140),
        "participant_identity": names | st.emails(),
        "participant_metadata": st.text(max_size=30) | st.just("x" * 4097),
        "participant_attributes": attributes,
        "room_config": room_config,
        "roomConfig": room_config,
        "unknown": json_values,
    },
)
STAFF_NAMES = ["alice", "bob@example.com"]
configs = st.builds(
    lambda allowed, default_idx, ttl, max_ttl, rooms, idents, staff: PolicyConfig(
        default_agent=sorted(allowed)[default_idx % len(allowed)],
        allowed_agents=frozenset(allowed),
        ttl_seconds=ttl,
        max_ttl_seconds=max_ttl,
        allow_client_room_names=rooms,
        allow_client_identities=idents,
        staff_identities=frozenset(staff),
    ),
    st.sets(st.sampled_from(["kaiwa", "helper", "other"]), min_size=1),
    st.integers(min_value=0, max_value=5),
    st.integers(min_value=10, max_value=100_000),
    st.integers(min_value=10, max_value=10_000),
    st.booleans(),
    st.booleans(),
    st.sets(st.sampled_from(STAFF_NAMES)),
)
proxy_identities = (
    st.none() | st.text(max_size=20) | st.emails() | st.sampled_from([*STAFF_NAMES, "carol"])
)


def check_invariants(
    decision: Decision,
    config: PolicyConfig,
    authenticated: str | None,
    raw: dict[str, Any],
    staff_credential: bool = False,
    channel: Channel = Channel.LIVEKIT_CLIENT,
) -> None:
    # One room, and it is the room of the grant.
    assert decision.grants.room == decision.room
    assert re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", decision.room)
    if not config.allow_client_room_names:
        assert decision.room.startswith("kaiwa-")
    # Identity: the proxy's if any, else server-made unless clients may choose.
    assert re.fullmatch(limits.IDENTITY_PATTERN, decision.identity) and decision.identity
    if authenticated is not None:
        assert decision.identity == authenticated
    elif not config.allow_client_identities:
        assert decision.identity.startswith("user-")
    # Grants: join + publish/subscribe only, restricted sources.
    g = decision.grants
    assert g.room_join and g.can_subscribe and g.can_publish and g.can_publish_data
    assert set(g.can_publish_sources) <= set(PUBLISH_SOURCES)
    # TTL within the cap.
    assert 1 <= decision.ttl_seconds <= config.max_ttl_seconds
    # Exactly one agent, always allow-listed.
    assert len(decision.agents) == 1
    assert all(a.agent_name in config.allowed_agents for a in decision.agents)
    # Client data within limits.
    assert len(decision.metadata) <= limits.METADATA_MAX_CHARS
    assert len(decision.name) <= limits.PARTICIPANT_NAME_MAX or decision.name == decision.identity
    assert len(decision.attributes) <= limits.ATTRIBUTES_MAX_COUNT + 2
    assert not any(k.lower().startswith("lk.") for k in decision.attributes)
    # Who is talking: decided here, never by the client. Staff needs an authenticated
    # identity on the staff list or a staff credential; a client-chosen name is not enough.
    expected = (
        Role.STAFF
        if staff_credential
        or (authenticated is not None and authenticated in config.staff_identities)
        else Role.CALLER
    )
    assert decision.role is expected
    assert decision.channel is channel
    kaiwa_keys = {k for k in decision.attributes if k.lower().startswith("kaiwa.")}
    assert kaiwa_keys == {ROLE_ATTRIBUTE, CHANNEL_ATTRIBUTE}
    assert decision.attributes[ROLE_ATTRIBUTE] == expected.value
    assert decision.attributes[CHANNEL_ATTRIBUTE] == channel.value
    # Dispatch metadata is the server's (empty): the worker trusts job metadata.
    assert all(a.metadata == "" for a in decision.agents)
    # Only server-made identities skip the session cap.
    requested = (
        raw["participant_identity"]
        if "participant_identity" in raw
        else raw.get("participantIdentity")
    )
    assert decision.generated_identity == (authenticated is None and not requested)
    if decision.generated_identity:
        assert decision.identity.startswith("user-")

    # The minted JWT says the same and nothing more.
    claims = jwt.decode(MINTER.mint(decision), SECRET, algorithms=["HS256"], issuer="key")
    assert set(claims["video"]) <= ALLOWED_VIDEO_CLAIMS
    assert claims["video"]["room"] == decision.room and claims["video"]["roomJoin"] is True
    assert claims["exp"] - claims["nbf"] <= config.max_ttl_seconds
    assert [a["agentName"] for a in claims["roomConfig"]["agents"]] == [
        a.agent_name for a in decision.agents
    ]
    assert set(claims["roomConfig"]) == {"agents"}
    assert all(set(a) == {"agentName"} for a in claims["roomConfig"]["agents"])
    assert claims["sub"] == decision.identity
    assert claims["attributes"][ROLE_ATTRIBUTE] == expected.value
    assert "canUpdateOwnMetadata" not in claims["video"]  # cannot rewrite kaiwa.role later


def note(label: str) -> None:
    if currently_in_test_context():  # --hypothesis-show-statistics shows the mix
        event(label)


def run(
    raw: Any,
    config: PolicyConfig,
    authenticated: str | None,
    staff_credential: bool = False,
    channel: Channel = Channel.LIVEKIT_CLIENT,
) -> Decision | Refusal | None:
    try:
        request = TokenRequest.model_validate(raw)
    except ValidationError:
        note("invalid_request")
        return None  # the HTTP layer answers 400 invalid_request
    result = decide(
        request,
        config,
        authenticated_identity=authenticated,
        staff_credential=staff_credential,
        channel=channel,
    )
    if isinstance(result, Refusal):
        assert result.status in (400, 403)
        assert result.code and result.detail
        assert len(result.detail) < 400
        note(f"refused: {result.code}")
    else:
        note(f"accepted: {result.role}")
        check_invariants(result, config, authenticated, raw, staff_credential, channel)
    return result


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    raw=request_dicts,
    config=configs,
    authenticated=proxy_identities,
    staff_credential=st.booleans(),
    channel=st.sampled_from(Channel),
)
def test_structured_requests(
    raw: dict[str, Any],
    config: PolicyConfig,
    authenticated: str | None,
    staff_credential: bool,
    channel: Channel,
) -> None:
    run(raw, config, authenticated, staff_credential, channel)


@settings(max_examples=200, deadline=None)
@given(raw=json_values, config=configs)
def test_arbitrary_json_never_crashes(raw: Any, config: PolicyConfig) -> None:
    if isinstance(raw, dict):
        run(raw, config, None)
    else:
        try:
            TokenRequest.model_validate(raw)
        except ValidationError:
            pass


@settings(max_examples=100, deadline=None)
@given(agent=st.text(max_size=20), config=configs)
def test_only_allow_listed_agents_are_accepted(agent: str, config: PolicyConfig) -> None:
    request = TokenRequest.model_validate({"room_config": {"agents": [{"agent_name": agent}]}})
    result = decide(request, config)
    if agent and agent not in config.allowed_agents:
        assert isinstance(result, Refusal) and result.code == "agent_not_allowed"
    else:
        assert isinstance(result, Decision)
        assert result.agents[0].agent_name == (agent or config.default_agent)


def test_accepted_examples_exist() -> None:
    """Guard against a strategy that only ever produces refusals."""
    config = PolicyConfig(default_agent="kaiwa", allowed_agents=frozenset({"kaiwa"}))
    result = run({"room_config": {"agents": [{"agent_name": "kaiwa"}]}}, config, None)
    assert isinstance(result, Decision)

"""Turn a policy `Decision` into a signed LiveKit access token (JWT)."""

from __future__ import annotations

import datetime

from livekit import api

from token_server.policy import Decision


class TokenMinter:
    """Holds the API key/secret; the secret never leaves this object except as a signature."""

    def __init__(self, api_key: str, api_secret: str) -> None:
        self._api_key = api_key
        self._api_secret = api_secret

    def __repr__(self) -> str:  # keep the secret out of reprs, tracebacks, debuggers
        return f"TokenMinter(api_key={self._api_key!r})"

    def mint(self, decision: Decision) -> str:
        grants = decision.grants
        video = api.VideoGrants(
            room_join=grants.room_join,
            room=grants.room,
            can_subscribe=grants.can_subscribe,
            can_publish=grants.can_publish,
            can_publish_data=grants.can_publish_data,
            can_publish_sources=list(grants.can_publish_sources),
        )
        # Explicit dispatch: livekit-server starts these agents when this join creates
        # the room (claim roomConfig.agents[].agentName).
        room_config = api.RoomConfiguration(
            agents=[
                api.RoomAgentDispatch(agent_name=a.agent_name, metadata=a.metadata)
                for a in decision.agents
            ]
        )
        token = (
            api.AccessToken(self._api_key, self._api_secret)
            .with_identity(decision.identity)
            .with_name(decision.name)
            .with_kind("standard")
            .with_grants(video)
            .with_room_config(room_config)
            .with_ttl(datetime.timedelta(seconds=decision.ttl_seconds))
        )
        if decision.metadata:
            token = token.with_metadata(decision.metadata)
        if decision.attributes:
            token = token.with_attributes(dict(decision.attributes))
        return token.to_jwt()

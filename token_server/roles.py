"""Who is talking: the participant attributes the token server signs into every token.

Pure (standard library only): the worker imports these names to read a participant's
role, so both sides agree on the keys and values.

    from token_server.roles import ROLE_ATTRIBUTE, Role, role_of
    if role_of(participant.attributes) is Role.STAFF: ...

Clients cannot set any `kaiwa.*` (or `lk.*`) attribute in a token request (403), and
tokens never carry `canUpdateOwnMetadata`, so a participant cannot change these after
joining either: the values come from the token server alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Final

ROLE_ATTRIBUTE: Final = "kaiwa.role"
CHANNEL_ATTRIBUTE: Final = "kaiwa.channel"
# Set only for a push-to-talk credential (a reception counter with bystanders): the worker
# then runs that call with the talk key, whatever its own KAIWA_TURN_MODE says.
TURN_MODE_ATTRIBUTE: Final = "kaiwa.turn_mode"
PUSH_TO_TALK: Final = "push_to_talk"

# Attribute key prefixes a client may not set: LiveKit's and the agents framework's own
# (lk.agent.state, lk.transcription_final, ...) and kaiwa's. Compared case-insensitively.
RESERVED_ATTRIBUTE_PREFIXES: Final = ("lk.", "kaiwa.")


class Role(StrEnum):
    """`kaiwa.role`: decided by the token server from how the request authenticated."""

    STAFF = "staff"  # authenticated AND listed as staff (or a bearer key marked staff)
    CALLER = "caller"  # everyone else, including every open-mode request


class Channel(StrEnum):
    """`kaiwa.channel`: where the token request came from. A hint for logs and wording,
    taken from browser headers a non-browser client can imitate: never authorize on it."""

    WEB = "web"  # the page this token server serves (same-origin browser request)
    LIVEKIT_CLIENT = "livekit-client"  # any other client: SDK app, widget elsewhere, curl


def is_reserved_attribute(key: str) -> bool:
    return key.lower().startswith(RESERVED_ATTRIBUTE_PREFIXES)


def push_to_talk_of(attributes: Mapping[str, str] | None) -> bool:
    """Whether the token server made this participant's call push-to-talk."""
    return (attributes or {}).get(TURN_MODE_ATTRIBUTE) == PUSH_TO_TALK


def role_of(attributes: Mapping[str, str] | None) -> Role:
    """A participant's role; anything but exactly "staff" (missing, misspelt) is a caller."""
    value = (attributes or {}).get(ROLE_ATTRIBUTE)
    return Role.STAFF if value == Role.STAFF.value else Role.CALLER

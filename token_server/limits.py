"""Static limits on client-supplied values.

Shared by the policy (which enforces them) and the wire models (which publish them in
the OpenAPI schema), so the spec describes exactly what the server accepts.
"""

from __future__ import annotations

from token_server.roles import RESERVED_ATTRIBUTE_PREFIXES as RESERVED_ATTRIBUTE_PREFIXES

# Room names and identities a client may choose (only when the deployment allows it).
# Conservative character set: safe in URLs, logs and file names.
ROOM_NAME_PATTERN = r"^[A-Za-z0-9_.-]{0,64}$"
ROOM_NAME_MAX = 64
IDENTITY_PATTERN = r"^[A-Za-z0-9_.@+:-]{0,128}$"
IDENTITY_MAX = 128

PARTICIPANT_NAME_MAX = 128
METADATA_MAX_CHARS = 4096
AGENT_NAME_MAX = 128
# Clients may name an agent, nothing else in room_config: dispatch metadata becomes the
# job's metadata, which the worker reads as the server's (crash recovery uses it).
AGENT_METADATA_MAX_CHARS = 0
DEPLOYMENT_MAX = 0

ATTRIBUTES_MAX_COUNT = 16
ATTRIBUTE_KEY_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
ATTRIBUTE_KEY_MAX = 64
ATTRIBUTE_VALUE_MAX_CHARS = 1024
# RESERVED_ATTRIBUTE_PREFIXES (from roles.py): LiveKit and the agents framework own
# `lk.*` attributes (lk.agent.state, ...); the token server owns `kaiwa.*`.
# Total UTF-8 bytes of all keys and values; also bounds JWT size (sent on every join).
ATTRIBUTES_MAX_TOTAL_BYTES = 8192

MAX_AGENT_DISPATCHES = 1

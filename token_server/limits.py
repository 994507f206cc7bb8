"""Static limits on client-supplied values.

Shared by the policy (which enforces them) and the wire models (which publish them in
the OpenAPI schema), so the spec describes exactly what the server accepts.
"""

from __future__ import annotations

# Room names and identities a client may choose (only when the deployment allows it).
# Conservative character set: safe in URLs, logs and file names.
ROOM_NAME_PATTERN = r"^[A-Za-z0-9_.-]{0,64}$"
ROOM_NAME_MAX = 64
IDENTITY_PATTERN = r"^[A-Za-z0-9_.@+:-]{0,128}$"
IDENTITY_MAX = 128

PARTICIPANT_NAME_MAX = 128
METADATA_MAX_CHARS = 4096
AGENT_NAME_MAX = 128
AGENT_METADATA_MAX_CHARS = 4096
DEPLOYMENT_MAX = 128

ATTRIBUTES_MAX_COUNT = 16
ATTRIBUTE_KEY_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
ATTRIBUTE_KEY_MAX = 64
ATTRIBUTE_VALUE_MAX_CHARS = 1024
# LiveKit and the agents framework own `lk.*` attributes (lk.agent.state, ...).
RESERVED_ATTRIBUTE_PREFIX = "lk."
# Total UTF-8 bytes of all keys and values; also bounds JWT size (sent on every join).
ATTRIBUTES_MAX_TOTAL_BYTES = 8192

MAX_AGENT_DISPATCHES = 1

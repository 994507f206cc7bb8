"""Recovery metadata that only kaiwa's own worker can write.

A job whose dispatch metadata says "you replace a crashed job" greets the caller with an
apology and resumes the crashed job's Gemini conversation (its scope's resumption handle).
Dispatch metadata can come from outside kaiwa (a token's room_config, anyone holding API
credentials for another purpose, a replayed dispatch), so the worker signs what it writes:
HMAC-SHA256 over (room, previous job id, scope, crashed_at, attempt, kind), keyed with a
key derived from the LiveKit API secret, which the workers already share. A job believes
the block only when the signature matches its own room and the crash is recent
(`KAIWA_RECOVERY_MAX_AGE_S`, 10 minutes by default; clocks of the worker hosts are assumed
in sync to within seconds). Anything else is an ordinary new call.
"""

from __future__ import annotations

import hashlib
import hmac
import json

_CONTEXT = b"kaiwa/recovery-metadata/v1"
# clocks of two worker hosts may disagree a little; a crash "from the future" beyond this
# is not believed
CLOCK_SKEW_S = 30.0


def _key(secret: str) -> bytes:
    # a key of its own, derived from the API secret: a MAC made here is never a valid
    # LiveKit token signature, nor the other way round
    return hmac.new(secret.encode(), _CONTEXT, hashlib.sha256).digest()


def _message(
    *, room: str, previous_job_id: str, scope: str, crashed_at: float, attempt: int, kind: str
) -> bytes:
    # crashed_at with millisecond precision: the same text after a JSON round trip
    return json.dumps(
        ["v1", room, previous_job_id, scope, f"{crashed_at:.3f}", int(attempt), kind],
        separators=(",", ":"),
        ensure_ascii=True,
    ).encode()


def sign(
    secret: str,
    *,
    room: str,
    previous_job_id: str,
    scope: str,
    crashed_at: float,
    attempt: int,
    kind: str,
) -> str:
    msg = _message(
        room=room,
        previous_job_id=previous_job_id,
        scope=scope,
        crashed_at=crashed_at,
        attempt=attempt,
        kind=kind,
    )
    return hmac.new(_key(secret), msg, hashlib.sha256).hexdigest()


def check(
    secret: str,
    signature: str,
    *,
    room: str,
    previous_job_id: str,
    scope: str,
    crashed_at: float,
    attempt: int,
    kind: str,
    now: float,
    max_age_s: float,
) -> str | None:
    """None when genuine and fresh, else why not (a few words, no secret in them)."""
    expected = sign(
        secret,
        room=room,
        previous_job_id=previous_job_id,
        scope=scope,
        crashed_at=crashed_at,
        attempt=attempt,
        kind=kind,
    )
    if not hmac.compare_digest(expected, signature):
        return "bad signature"
    age = now - crashed_at
    if age > max_age_s:
        return f"expired ({age:.0f}s old, max {max_age_s:.0f}s)"
    if age < -CLOCK_SKEW_S:
        return "crash time in the future"
    return None

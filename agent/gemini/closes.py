"""Gemini close codes as lines a person can act on (logs only; callers hear sentences)."""

from __future__ import annotations

import re

_CLOSE_MEANINGS = {
    1000: "closed normally by the server",
    1006: "connection lost without a close frame (network drop or server crash)",
    1007: "invalid argument: usually a bad or missing API key, or the context is exhausted",
    1008: "policy violation: usually a wrong model name or API version for this key "
    "(check KAIWA_MODEL; Vertex and the Gemini API use different model names)",
    1011: "Gemini internal error (transient; reconnecting usually works)",
    1013: "Gemini is overloaded; try again later",
}


def close_code(error: BaseException) -> int | None:
    """The WebSocket close code behind a google-genai / websockets error, if any."""
    code = getattr(error, "code", None)
    if isinstance(code, int):
        return code
    rcvd = getattr(error, "rcvd", None)
    if rcvd is not None and isinstance(getattr(rcvd, "code", None), int):
        return int(rcvd.code)
    m = re.match(r"\s*(\d{4})\b", str(error))
    return int(m.group(1)) if m else None


def describe_close(code: int | None, detail: str = "") -> str:
    meaning = _CLOSE_MEANINGS.get(code or 0, "unexpected failure")
    head = f"close {code}: {meaning}" if code else meaning
    return f"{head} ({detail[:200]})" if detail else head

"""No personal data in log lines.

livekit-agents and the Google plugin mark fields that carry conversation content, tool
arguments or caller data with an `lk.pii.` prefix (e.g. `lk.pii.arguments`); their JSON
log formatter writes them out like any other field. kaiwa drops those fields and masks
phone numbers and email addresses in every message and traceback before a handler writes
them, unless KAIWA_LOG_PII=1 (for debugging on a developer's machine only).
"""

from __future__ import annotations

import logging
import re

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
# 8+ digits, optionally grouped by spaces, dots, hyphens or parentheses: phone-like
_PHONE = re.compile(r"(?<![\w-])\+?\d(?:[\s().-]?\d){7,}(?![\w-])")


def scrub(text: str) -> str:
    return _PHONE.sub("[phone]", _EMAIL.sub("[email]", text))


class RedactPII(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key in [k for k in record.__dict__ if k.startswith("lk.pii.")]:
            delattr(record, key)
        try:
            message = record.getMessage()
        except Exception:
            return True
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        return True


def install(enabled: bool = True) -> None:
    """Add the filter to every root handler (idempotent; the framework sets them up)."""
    if not enabled:
        return
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactPII) for f in handler.filters):
            handler.addFilter(RedactPII())

"""Input validation. Each check returns the cleaned value or raises InvalidInput with a
sentence the model can relay to the caller (and act on: ask again, confirm, ...).

Refusals never repeat personal data (phone numbers, email addresses): they say "the phone
number given", since error text ends up in logs and transcripts."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from typing import Literal

from desk.errors import InvalidInput
from desk.phones import MAX_DIGITS, MIN_DIGITS, MIN_SEARCH_DIGITS, phone_digits

ReturnKind = Literal["return", "pickup"]
RETURN_KINDS: tuple[ReturnKind, ...] = ("return", "pickup")

MAX_NAME = 100
MAX_TEXT = 2000
MAX_QUOTE_YEN = 100_000_000  # well above any recovery job; catches misheard extra zeros
MAX_LIMIT = 100

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")


def _clean(text: object) -> str:
    """NFKC (full-width → ASCII, half-width kana → full) and collapsed whitespace."""
    return " ".join(unicodedata.normalize("NFKC", str(text)).split())


def customer_name(value: object) -> str:
    name = _clean(value) if value is not None else ""
    if not any(ch.isalpha() for ch in name):
        raise InvalidInput(
            "The customer's name is missing; please ask for it.", field="customer_name"
        )
    if len(name) > MAX_NAME:
        raise InvalidInput(
            "That name is too long; please give a shorter form.", field="customer_name"
        )
    return name


def phone(value: str | None) -> str | None:
    """Optional; kept as given (cleaned) for display, compared via phone_digits."""
    if value is None or not _clean(value):
        return None
    text = _clean(value)
    if re.search(r"[^\d\s()+\-.]", text):
        raise InvalidInput(
            "The phone number given contains letters; please ask for just the digits.",
            field="phone",
        )
    digits = phone_digits(text)
    if len(digits) < MIN_DIGITS:
        raise InvalidInput(
            "The phone number given is too short; please ask for the full number.",
            field="phone",
        )
    if len(digits) > MAX_DIGITS:
        raise InvalidInput(
            "The phone number given has too many digits; please ask for it again.",
            field="phone",
        )
    return text


def phone_query(value: str) -> str:
    digits = phone_digits(_clean(value))
    if len(digits) < MIN_SEARCH_DIGITS:
        raise InvalidInput(
            f"Please give at least the last {MIN_SEARCH_DIGITS} digits of the phone number.",
            field="phone",
        )
    return digits


def email(value: str | None) -> str | None:
    if value is None or not _clean(value):
        return None
    given = _clean(value)
    text = given.replace(" ", "").lower()
    if not _EMAIL.match(text):
        raise InvalidInput(
            "The email address given doesn't look complete; please ask for it again, "
            "spelling out the part after the @.",
            field="email",
        )
    return text


def text(value: object, *, what: str, field: str) -> str:
    cleaned = _clean(value) if value is not None else ""
    if not cleaned:
        raise InvalidInput(f"The {what} is empty; please ask what to record.", field=field)
    if len(cleaned) > MAX_TEXT:
        raise InvalidInput(f"The {what} is too long; please summarise it.", field=field)
    return cleaned


def actor(value: str) -> str:
    cleaned = _clean(value)
    if not cleaned or len(cleaned) > MAX_NAME:
        raise InvalidInput("The actor name must be 1 to 100 characters.", field="actor")
    return cleaned


def quote_yen(value: object) -> int:
    """Whole yen. Tolerates what function calling produces: 50000.0, "50,000", "¥50000"."""
    amount: int | None = None
    if isinstance(value, bool):
        amount = None
    elif isinstance(value, int):
        amount = value
    elif isinstance(value, float) and value.is_integer():
        amount = int(value)
    elif isinstance(value, str):
        digits = re.sub(r"[\s,¥￥円]|yen", "", unicodedata.normalize("NFKC", value).lower())
        amount = int(digits) if digits.isdigit() else None
    if amount is None or not 0 <= amount <= MAX_QUOTE_YEN:
        raise InvalidInput(
            f"The quote must be a whole number of yen from 0 to {MAX_QUOTE_YEN:,}; "
            f"'{value}' isn't. Please confirm the amount.",
            field="quote_yen",
        )
    return amount


def return_date(value: dt.date | str, *, today: dt.date) -> dt.date:
    """A date (ISO string accepted), not in the past."""
    if isinstance(value, dt.datetime):
        day = value.date()
    elif isinstance(value, dt.date):
        day = value
    else:
        try:
            day = dt.date.fromisoformat(_clean(value))
        except ValueError:
            raise InvalidInput(
                f"I couldn't read the date '{value}'; please give it as year-month-day.",
                field="date",
            ) from None
    if day < today:
        raise InvalidInput(
            f"{day.isoformat()} is in the past; please pick today or a later date.",
            field="date",
        )
    return day


def instant(value: object, *, field: str) -> dt.datetime:
    """A timezone-aware datetime (a naive one would be read in the machine's zone)."""
    if not isinstance(value, dt.datetime) or value.utcoffset() is None:
        raise InvalidInput("A time to search by needs its time zone.", field=field)
    return value


def return_kind(value: str) -> ReturnKind:
    kind = _clean(value).lower()
    if kind not in RETURN_KINDS:
        raise InvalidInput(
            f"'{value}' must be 'return' (we send it back) or 'pickup' (the customer collects).",
            field="kind",
        )
    return kind


def limit(value: object) -> int:
    """Positive whole number (JSON numbers may arrive as 5.0), capped at MAX_LIMIT."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput("The result limit must be a positive whole number.", field="limit")
    return min(value, MAX_LIMIT)


MAX_KEY = 500


def _opaque(value: object, *, what: str, field: str) -> str | None:
    """An optional identifier from our own code (not from the caller): kept verbatim."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_KEY:
        raise InvalidInput(f"The {what} must be 1 to {MAX_KEY} characters.", field=field)
    return value


def idempotency_key(value: object) -> str | None:
    return _opaque(value, what="request id", field="idempotency_key")


def call_scope(value: object) -> str | None:
    return _opaque(value, what="call id", field="call_scope")


def dedupe_window(value: object) -> float:
    """Seconds, >= 0 (0 turns the duplicate check off)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise InvalidInput(
            "The duplicate window must be zero or more seconds.", field="dedupe_window_s"
        )
    return float(value)


def technician(value: object) -> str:
    """A technician's name, free text (any script)."""
    name = _clean(value) if value is not None else ""
    if not any(ch.isalpha() for ch in name):
        raise InvalidInput(
            "The technician's name is missing; please say who should work on the case.",
            field="technician",
        )
    if len(name) > MAX_NAME:
        raise InvalidInput(
            "That technician name is too long; please give a shorter form.", field="technician"
        )
    return name


PAYMENT_METHODS = ("cash", "card", "bank_transfer", "other")
_METHOD_ALIASES = {
    "cash": "cash", "現金": "cash",
    "card": "card", "creditcard": "card", "credit": "card", "debitcard": "card",
    "カード": "card", "クレジットカード": "card", "クレジット": "card",
    "banktransfer": "bank_transfer", "transfer": "bank_transfer", "bank": "bank_transfer",
    "wire": "bank_transfer", "振込": "bank_transfer", "振り込み": "bank_transfer",
    "銀行振込": "bank_transfer",
    "other": "other", "その他": "other",
}  # fmt: skip


def payment_method(value: object) -> str:
    key = "".join(
        ch for ch in unicodedata.normalize("NFKC", str(value or "")).casefold() if ch.isalnum()
    )
    method = _METHOD_ALIASES.get(key)
    if method is None:
        raise InvalidInput(
            "How was it paid? The method must be cash, card, bank transfer or other.",
            field="method",
        )
    return method


def payment_yen(value: object) -> int:
    """A positive whole number of yen (same spoken forms as a quote)."""
    try:
        amount = quote_yen(value)
    except InvalidInput:
        amount = 0
    if amount <= 0:
        raise InvalidInput(
            f"A payment must be a whole number of yen above zero; '{value}' isn't. "
            "Please confirm the amount.",
            field="amount_yen",
        )
    return amount


MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
MAX_FILE_NAME = 200
# What a photo of a device may be, told by its first bytes (the client's word is not taken).
_SIGNATURES: tuple[tuple[str, bytes, int], ...] = (
    ("image/jpeg", b"\xff\xd8\xff", 0),
    ("image/png", b"\x89PNG\r\n\x1a\n", 0),
    ("image/gif", b"GIF8", 0),
    ("image/webp", b"WEBP", 8),  # RIFF....WEBP
    ("image/heic", b"ftypheic", 4),
    ("image/heic", b"ftypheix", 4),
    ("image/heic", b"ftypmif1", 4),
)


def attachment_name(value: object) -> str:
    """The file's own name (no folders), printable, at most MAX_FILE_NAME characters."""
    name = _clean(value) if value is not None else ""
    name = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    name = "".join(ch for ch in name if ch.isprintable())
    if not name or name in (".", ".."):
        raise InvalidInput("The file has no name; please choose it again.", field="name")
    if len(name) > MAX_FILE_NAME:
        raise InvalidInput(
            f"The file name is longer than {MAX_FILE_NAME} characters; please rename it.",
            field="name",
        )
    return name


def attachment(data: object) -> tuple[bytes, str]:
    """The bytes and their content type: a JPEG, PNG, GIF, WebP or HEIC photo, not empty,
    at most MAX_ATTACHMENT_BYTES."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidInput("The file's contents are missing.", field="file")
    raw = bytes(data)
    if not raw:
        raise InvalidInput("The file is empty; please choose the photo again.", field="file")
    if len(raw) > MAX_ATTACHMENT_BYTES:
        raise InvalidInput(
            f"The file is larger than {MAX_ATTACHMENT_BYTES // (1024 * 1024)} MB; please "
            "attach a smaller photo.",
            field="file",
        )
    for content_type, magic, offset in _SIGNATURES:
        if raw[offset : offset + len(magic)] == magic:
            return raw, content_type
    raise InvalidInput(
        "Only photos can be attached (JPEG, PNG, GIF, WebP or HEIC); that file is not one.",
        field="file",
    )

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

"""Phone numbers reduced to comparable digits (Japanese national form where possible)."""

from __future__ import annotations

import unicodedata

MIN_DIGITS = 10  # Japanese numbers are 10 (landline) or 11 (mobile) digits with the 0
MAX_DIGITS = 15  # E.164 maximum
MIN_SEARCH_DIGITS = 4


def phone_digits(text: str) -> str:
    """Digits only; '+81 90-1234-5678', '+81 (0)90…' and '090 1234 5678' all → '09012345678'.

    Other country codes keep their digits without the '+'.
    """
    s = unicodedata.normalize("NFKC", text).strip()
    digits = "".join(ch for ch in s if ch.isdigit())
    if s.startswith("+81") or (s.startswith("0081") and len(digits) > 11):
        national = digits[2:] if s.startswith("+") else digits[4:]
        return "0" + national.removeprefix("0")
    return digits

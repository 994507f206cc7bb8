"""Speakable case ids: 'R-' plus a sequential number (R-1001, R-1002, ...)."""

from __future__ import annotations

import re
import unicodedata

PREFIX = "R"
FIRST_NUMBER = 1001  # four digits from the start: short to say, easy to hear back

# After NFKC + casefold + dropping punctuation/spaces, accept e.g. "r1042", "1042",
# "アール1042", "case1042", "案件番号1042", "r1042番".
_SPOKEN_ID = re.compile(
    r"^(?:case|ケース|案件|受付)?(?:r|アール|あーる)?(?:no|number|番号)?(\d{1,9})番?$"
)


def format_case_id(number: int) -> str:
    return f"{PREFIX}-{number}"


def parse_case_id(text: str) -> int | None:
    """The case number in a spoken/typed id, or None if it doesn't look like one.

    Full-width forms ("Ｒ－１０４２") become ASCII through NFKC. Numbers must be digits:
    spoken-number words ("ten forty-two", "千四十二") are left to the speech model.
    """
    s = unicodedata.normalize("NFKC", text).casefold()
    s = "".join(ch for ch in s if ch.isalnum())  # keeps kana and the ー in アール
    match = _SPOKEN_ID.match(s)
    return int(match.group(1)) if match else None

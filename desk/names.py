"""Customer-name matching keys, tolerant of what speech-to-text produces.

A stored name gets one ``name_key``: its folded form and its loose romaji form joined by
'|'. A query is split into words; a case matches when every word (folded or as loose
romaji) is a substring of the key. So "Tanaka", "tanaka-san", "たなか" and "タナカ" all find
"タナカ ハナコ" and "Hanako Tanaka", in either word order.

Limits: kanji are compared only as written ("田中" finds "田中花子", but "Tanaka" does not —
reading kanji needs a dictionary); katakana renderings of foreign names are not matched
to their Latin spelling ("スミス" does not find "Smith").
"""

from __future__ import annotations

import re
import unicodedata

from desk.kana import loosen, to_hiragana, to_romaji

SEPARATOR = "|"

# Honorifics the model often keeps ("Tanaka-san", "田中様"); they are not part of a name.
_HONORIFIC_WORDS = frozenset({"san", "sama", "kun", "chan", "mr", "mrs", "ms", "miss", "dr"})
_HONORIFIC_SUFFIX = re.compile(r"(さん|さま|様|殿|くん|君|ちゃん)$")  # matched after folding


def fold(text: str) -> str:
    """NFKC (full/half width), case-fold, katakana→hiragana, drop spaces and punctuation."""
    s = to_hiragana(unicodedata.normalize("NFKC", text).casefold())
    return "".join(ch for ch in s if ch.isalnum())


def romaji_key(text: str) -> str:
    return loosen(to_romaji(fold(text)))


def name_key(name: str) -> str:
    # Only alnum characters survive fold/romaji, so the separator (and SQL LIKE
    # wildcards) can never appear inside either half.
    return fold(name) + SEPARATOR + romaji_key(name)


def query_terms(query: str) -> list[tuple[str, str]]:
    """Per spoken word: (folded, loose romaji). Honorifics are dropped."""
    words = re.split(r"[\W_]+", unicodedata.normalize("NFKC", query))
    terms: list[tuple[str, str]] = []
    for word in words:
        # Japanese has no spaces before honorifics: "タナカサン" → "たなか"; a bare "様" → "".
        folded = _HONORIFIC_SUFFIX.sub("", fold(word))
        if not folded or folded in _HONORIFIC_WORDS:
            continue
        terms.append((folded, loosen(to_romaji(folded))))
    return terms

"""Kana folding and a small Hepburn kana→romaji transliterator.

Only what name matching needs: katakana folds to hiragana, kana becomes Hepburn romaji,
and ``loosen`` erases spelling differences speech-to-text output commonly has
(Satoh/Satō/Satou/Sato, Kunrei si/ti/tu vs Hepburn shi/chi/tsu, Hattori/Hatori).
Kanji are passed through untouched: reading them needs a dictionary we don't ship.
"""

from __future__ import annotations

import re

_KATA_FIRST, _KATA_LAST = 0x30A1, 0x30F6  # ァ..ヶ map 1:1 onto ぁ..ゖ
_KATA_TO_HIRA = {cp: cp - 0x60 for cp in range(_KATA_FIRST, _KATA_LAST + 1)}


def to_hiragana(text: str) -> str:
    return text.translate(_KATA_TO_HIRA)


_MONO: dict[str, str] = {
    "あ": "a", "い": "i", "う": "u", "え": "e", "お": "o",
    "か": "ka", "き": "ki", "く": "ku", "け": "ke", "こ": "ko",
    "が": "ga", "ぎ": "gi", "ぐ": "gu", "げ": "ge", "ご": "go",
    "さ": "sa", "し": "shi", "す": "su", "せ": "se", "そ": "so",
    "ざ": "za", "じ": "ji", "ず": "zu", "ぜ": "ze", "ぞ": "zo",
    "た": "ta", "ち": "chi", "つ": "tsu", "て": "te", "と": "to",
    "だ": "da", "ぢ": "ji", "づ": "zu", "で": "de", "ど": "do",
    "な": "na", "に": "ni", "ぬ": "nu", "ね": "ne", "の": "no",
    "は": "ha", "ひ": "hi", "ふ": "fu", "へ": "he", "ほ": "ho",
    "ば": "ba", "び": "bi", "ぶ": "bu", "べ": "be", "ぼ": "bo",
    "ぱ": "pa", "ぴ": "pi", "ぷ": "pu", "ぺ": "pe", "ぽ": "po",
    "ま": "ma", "み": "mi", "む": "mu", "め": "me", "も": "mo",
    "や": "ya", "ゆ": "yu", "よ": "yo",
    "ら": "ra", "り": "ri", "る": "ru", "れ": "re", "ろ": "ro",
    "わ": "wa", "ゐ": "i", "ゑ": "e", "を": "o", "ん": "n", "ゔ": "vu",
    "ぁ": "a", "ぃ": "i", "ぅ": "u", "ぇ": "e", "ぉ": "o",
    "ゃ": "ya", "ゅ": "yu", "ょ": "yo", "ゎ": "wa",
}  # fmt: skip


def _digraphs() -> dict[str, str]:
    table: dict[str, str] = {}
    # き+ゃ → kya, but し+ゃ → sha, じ+ゃ → ja (Hepburn drops the y after sh/ch/j).
    for base in "きぎしじちぢにひびぴみり":
        stem = _MONO[base][:-1]
        for small, vowel in (("ゃ", "a"), ("ゅ", "u"), ("ょ", "o")):
            table[base + small] = stem + vowel if stem.endswith(("h", "j")) else stem + "y" + vowel
    # Loan-word combinations common in katakana names (フィリップ, ティナ, ヴィクター).
    table.update({
        "ふぁ": "fa", "ふぃ": "fi", "ふぇ": "fe", "ふぉ": "fo",
        "てぃ": "ti", "でぃ": "di", "とぅ": "tu", "どぅ": "du",
        "うぃ": "wi", "うぇ": "we", "うぉ": "wo",
        "ゔぁ": "va", "ゔぃ": "vi", "ゔぇ": "ve", "ゔぉ": "vo",
        "しぇ": "she", "ちぇ": "che", "じぇ": "je", "つぁ": "tsa",
    })  # fmt: skip
    return table


_DIGRAPH = _digraphs()
_VOWELS = "aeiou"


def to_romaji(text: str) -> str:
    """Hepburn romaji for the kana in ``text``; anything else passes through unchanged."""
    s = to_hiragana(text)
    out: list[str] = []
    geminate = False  # a pending small っ doubles the next consonant
    i = 0
    while i < len(s):
        ch = s[i]
        if s[i : i + 2] in _DIGRAPH:
            roma = _DIGRAPH[s[i : i + 2]]
            i += 2
        elif ch == "っ":
            geminate = True
            i += 1
            continue
        elif ch == "ー":  # long-vowel mark repeats the previous vowel
            prev = out[-1][-1:] if out else ""
            roma = prev if prev in _VOWELS else ""
            i += 1
        else:
            roma = _MONO.get(ch, ch)
            i += 1
        if geminate and roma and roma[0] not in _VOWELS + "n":
            roma = ("t" if roma.startswith("ch") else roma[0]) + roma
        geminate = False
        out.append(roma)
    return "".join(out)


_MACRONS = str.maketrans("āâīîūûēêōô", "aaiiuueeoo")

# Applied in order to both sides of a comparison, so only consistency matters, not
# linguistic correctness: Hepburn → compact Kunrei-like spelling, then collapse doubles.
_LOOSE_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), repl)
    for pattern, repl in (
        ("shi", "si"), ("chi", "ti"), ("tsu", "tu"), ("fu", "hu"), ("ji", "zi"),
        ("sh", "sy"), ("ch", "ty"), ("j", "zy"),
        (r"(?<=[aeiou])h(?![aeiouy])", ""),  # Satoh → sato, Ohno → ono
        (r"m(?=[bpm])", "n"),  # Shimbashi / Shinbashi, Homma / Honma
        (r"([b-df-hj-np-tv-z])\1+", r"\1"),  # Hattori → hatori (small っ is often missed)
        ("ou", "o"),  # Satou → sato
        (r"([aeiou])\1+", r"\1"),  # Ohno/Oono, Yuuki/Yuki
    )
)  # fmt: skip


def loosen(romaji: str) -> str:
    s = romaji.translate(_MACRONS)
    for pattern, repl in _LOOSE_RULES:
        s = pattern.sub(repl, s)
    return s

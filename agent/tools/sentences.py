"""Every tool error as one short sentence the model can say, in the caller's language.

Framework gap: when livekit-agents cannot parse a tool's arguments it gives the model
pydantic's text ("1 validation error for CreateCaseArgs ... https://errors.pydantic.dev/");
kaiwa validates arguments itself (runtime.py) and says what is missing or wrong by name.
No class names, URLs or stack traces ever reach the model.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal

import pydantic

Lang = Literal["en", "ja"]


def lang_of(language: str | None) -> Lang:
    return "ja" if language and language.lower().startswith("ja") else "en"


def _step(tool: str) -> str:
    return tool.replace("_", " ")


def expected(annotation: Any, lang: Lang) -> str:
    """What a parameter of this type expects, in words."""
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return expected(args[0], lang)
    if origin is Literal:
        choices = ", ".join(str(a) for a in typing.get_args(annotation))
        return f"one of: {choices}" if lang == "en" else f"次のいずれか: {choices}"
    words = {
        str: ("text", "文字列"),
        int: ("a whole number", "整数"),
        float: ("a number", "数値"),
        bool: ("true or false", "true か false"),
    }
    if annotation in words:
        return words[annotation][0 if lang == "en" else 1]
    if origin in (list, tuple) or annotation in (list, tuple):
        return "a list" if lang == "en" else "リスト"
    return "a value" if lang == "en" else "値"


def invalid_arguments(
    tool: str,
    error: pydantic.ValidationError,
    fields: dict[str, Any],
    lang: Lang,
) -> str:
    """One sentence for the first problem (the model fixes one and calls again)."""
    first = error.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else ""
    want = expected(fields.get(field), lang) if field in fields else ""
    if first["type"] == "missing":
        if lang == "ja":
            return (
                f"{_step(tool)} には {field}（{want}）が必要です。"
                "お客様に確認してからもう一度呼んでください。"
            )
        return (
            f"The {_step(tool)} step needs {field} ({want}); ask the caller for it, then call "
            "again."
        )
    if lang == "ja":
        return f"{_step(tool)} の {field} は{want}で指定してください。何も変更していません。"
    return f"For {_step(tool)}, {field} must be {want}. Nothing was changed; try again."


def unknown_arguments(tool: str, extra: list[str], allowed: list[str], lang: Lang) -> str:
    names = ", ".join(extra)
    known = ", ".join(allowed) or "none"
    if lang == "ja":
        return (
            f"{_step(tool)} に {names} という項目はありません（使える項目: {known}）。"
            "何も変更していません。"
        )
    return f"The {_step(tool)} step has no {names}; its fields are: {known}. Nothing was changed."


def timed_out(tool: str, limit_s: float, lang: Lang) -> str:
    if lang == "ja":
        return (
            f"{_step(tool)} が{limit_s:g}秒以内に終わらなかったため止めました。"
            "変更は保存されていません。時間がかかっていることを伝え、"
            "もう一度試すか提案してください。"
        )
    return (
        f"The {_step(tool)} step took longer than {limit_s:g} seconds and was stopped; nothing "
        "was saved. Tell the caller it is taking too long and offer to try again."
    )


def internal_error(tool: str, lang: Lang) -> str:
    if lang == "ja":
        return (
            f"{_step(tool)} が内部の問題で失敗しました。"
            "お詫びして、もう一度試すかメモを残すことを提案してください。"
        )
    return (
        f"The {_step(tool)} step failed because of an internal problem. Apologise to the "
        "caller and offer to try again or take a note."
    )


def bad_json(tool: str, lang: Lang) -> str:
    if lang == "ja":
        return (
            f"{_step(tool)} の引数が読み取れませんでした。"
            "項目名と値を確認してもう一度呼んでください。"
        )
    return f"The arguments for {_step(tool)} could not be read; call it again with named fields."

"""Page-declared UI actions and screen context, without a room (agent/tools/page_actions.py)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from agent.tools.page_actions import (
    MAX_ACTIONS,
    MAX_DECLARATION_BYTES,
    ActionSpec,
    DeclarationError,
    answer_sentence,
    check_arguments,
    parse_declaration,
)
from agent.tools.screen_context import MAX_CONTEXT_BYTES, ScreenContext

FILTER: dict[str, Any] = {
    "name": "filter",
    "description": "Filter the case queue.",
    "parameters": {
        "type": "object",
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "additionalProperties": False,
        "properties": {
            "status": {"type": "string", "enum": ["received", "quoted"]},
            "q": {"type": "string", "maxLength": 20},
        },
    },
}
OPEN: dict[str, Any] = {
    "name": "open_case",
    "description": "Open a case.",
    "parameters": {
        "type": "object",
        "properties": {
            "case_id": {"type": "string"},
            "position": {"type": "integer", "minimum": 1},
        },
    },
}


def declare(*actions: Mapping[str, object]) -> str:
    return json.dumps({"v": 1, "actions": [dict(a) for a in actions]})


def test_declaration_becomes_ui_tools_with_clean_schemas() -> None:
    specs = parse_declaration(declare(FILTER, OPEN))
    assert [s.tool_name for s in specs] == ["ui_filter", "ui_open_case"]
    schema = specs[0].schema()
    assert schema["name"] == "ui_filter"
    assert schema["description"].startswith("On the user's screen: Filter")
    # keys Gemini does not take are dropped, the rest kept
    assert "$schema" not in schema["parameters"]
    assert "additionalProperties" not in schema["parameters"]
    assert schema["parameters"]["properties"]["status"]["enum"] == ["received", "quoted"]


def test_empty_declaration_means_no_tools() -> None:
    assert parse_declaration(declare()) == []


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("not json", "not JSON"),
        (json.dumps({"actions": "filter"}), "expected"),
        (json.dumps({"v": 2, "actions": []}), "version"),
        (declare({"name": "Bad Name"}), "name must match"),
        (declare(FILTER, FILTER), "twice"),
        (declare({"name": "x", "parameters": {"type": "string"}}), "type object"),
        (declare({"name": "x", "parameters": {"type": "object", "required": ["y"]}}), "not a"),
        (declare(*[{"name": f"a{i}"} for i in range(MAX_ACTIONS + 1)]), "at most"),
        ("x" * (MAX_DECLARATION_BYTES + 1), "larger than"),
    ],
)
def test_bad_declarations_are_refused_with_a_reason(payload: str, reason: str) -> None:
    with pytest.raises(DeclarationError, match=reason):
        parse_declaration(payload)


def test_deep_schemas_are_refused() -> None:
    deep: dict[str, object] = {"type": "string"}
    for _ in range(6):
        deep = {"type": "object", "properties": {"x": deep}}
    with pytest.raises(DeclarationError, match="deeply"):
        parse_declaration(declare({"name": "x", "parameters": deep}))


def test_arguments_are_checked_against_the_declared_schema() -> None:
    filt, open_ = parse_declaration(declare(FILTER, OPEN))
    assert check_arguments(filt, {"status": "quoted"}) is None
    assert check_arguments(open_, {"position": 3}) is None
    assert "must be one of received, quoted" in (check_arguments(filt, {"status": "x"}) or "")
    assert "no argument color" in (check_arguments(filt, {"color": "red"}) or "")
    assert "must be an integer" in (check_arguments(open_, {"position": "third"}) or "")
    assert "at least 1" in (check_arguments(open_, {"position": 0}) or "")
    assert "at most 20 characters" in (check_arguments(filt, {"q": "y" * 21}) or "")
    need = ActionSpec("x", "x", {"type": "object", "properties": {"a": {"type": "string"}},
                                 "required": ["a"]})  # fmt: skip
    assert check_arguments(need, {}) == "ui_x needs a."


def test_page_answers_become_sentences() -> None:
    (spec,) = parse_declaration(declare(FILTER))
    assert answer_sentence(spec, json.dumps({"ok": True, "message": "Showing 4 cases."})) == (
        True,
        "Showing 4 cases.",
    )
    ok, text = answer_sentence(spec, json.dumps({"ok": False, "error": "refused",
                                                 "message": "unsaved changes"}))  # fmt: skip
    assert not ok and text == "The screen refused filter: unsaved changes."
    ok, text = answer_sentence(spec, json.dumps({"ok": False, "error": "invalid",
                                                 "message": "no such status"}))  # fmt: skip
    assert not ok and "did not accept ui_filter: no such status" in text
    assert answer_sentence(spec, "ok") == (True, "Done on the screen (filter).")


def test_screen_context_is_bounded_and_ordered() -> None:
    screen = ScreenContext("alice")
    assert screen.snapshot()["screen"] is None
    screen.update(json.dumps({"seq": 2, "view": "queue", "visible": ["R-1001", "R-1002"]}))
    screen.update(json.dumps({"seq": 1, "view": "stale"}))  # late: ignored
    snap = screen.snapshot()
    assert snap["view"] == "queue" and snap["visible"][1] == "R-1002" and "age_s" in snap
    with pytest.raises(ValueError, match="larger than"):
        screen.update(json.dumps({"x": "y" * MAX_CONTEXT_BYTES}))
    with pytest.raises(ValueError, match="object"):
        screen.update("[1]")
    assert screen.snapshot()["view"] == "queue"

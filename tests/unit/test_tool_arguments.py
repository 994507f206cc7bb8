"""Every tool answers missing, wrong-typed and extra arguments with one short sentence
that names the field (in the caller's language), never pydantic's text, and changes nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from livekit.agents import ToolError

from agent.tools import python_tools
from tests.support.tools_harness import FakeSession, call, settings_for, use_services

TOOLS = {t.info.name: t for t in python_tools()}
LEAKS = ("validation error", "pydantic", "errors.pydantic.dev", "Args", "Traceback", "type=")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "desk.sqlite3"
    use_services(settings_for(path, KAIWA_LAB_DELAY_S="0"))
    return path


def cases(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM cases").fetchone()[0])


def required(tool: Any) -> list[str]:
    return list(tool.info.raw_schema["parameters"].get("required", []))


def properties(tool: Any) -> dict[str, Any]:
    return dict(tool.info.raw_schema["parameters"].get("properties", {}))


def clean(message: str) -> None:
    assert not any(leak in message for leak in LEAKS), message
    assert "\n" not in message and len(message) < 300, message


@pytest.mark.parametrize("name", sorted(TOOLS))
async def test_missing_required_field_is_named(db: Path, name: str) -> None:
    tool = TOOLS[name]
    for field in required(tool):
        args = {f: "x" for f in required(tool) if f != field}
        with pytest.raises(ToolError) as err:
            await call(tool, **args)
        clean(err.value.message)
        assert field in err.value.message and "needs" in err.value.message
    assert cases(db) == 0


@pytest.mark.parametrize("name", sorted(TOOLS))
async def test_wrong_type_is_named(db: Path, name: str) -> None:
    tool = TOOLS[name]
    for field in properties(tool):
        args: dict[str, Any] = {f: "x" for f in required(tool)}
        args[field] = ["a", "list"]  # a list where a string (or number) belongs
        with pytest.raises(ToolError) as err:
            await call(tool, **args)
        clean(err.value.message)
        assert field in err.value.message, err.value.message
    assert cases(db) == 0


@pytest.mark.parametrize("name", sorted(TOOLS))
async def test_extra_field_is_refused_by_name(db: Path, name: str) -> None:
    tool = TOOLS[name]
    args: dict[str, Any] = {f: "x" for f in required(tool)} | {"favourite_colour": "blue"}
    with pytest.raises(ToolError) as err:
        await call(tool, **args)
    clean(err.value.message)
    assert "favourite_colour" in err.value.message
    assert cases(db) == 0


async def test_numbers_for_text_fields_are_taken_as_said(db: Path) -> None:
    created = await call(
        TOOLS["create_case"], customer_name="Aoki", device_type="SSD", symptom="dead"
    )
    number = int(created["id"][2:])
    got = await call(TOOLS["get_case"], case_id=number)  # Gemini sent 1001, not "R-1001"
    assert got["id"] == created["id"]


async def test_sentences_follow_the_callers_language(db: Path) -> None:
    session = FakeSession(language="ja-JP")
    with pytest.raises(ToolError) as err:
        await call(TOOLS["create_case"], session, device_type="SSD", symptom="x")
    assert "customer_name" in err.value.message and "必要" in err.value.message


async def test_spoken_amounts_reach_the_domain(db: Path) -> None:
    """set_quote takes what people say: the domain parses "55,000 yen" or "¥50000"."""
    created = await call(
        TOOLS["create_case"], customer_name="Aoki", device_type="SSD", symptom="dead"
    )
    await call(TOOLS["update_status"], case_id=created["id"], status="diagnosing")
    for said in ("55,000 yen", "¥50000", "50000"):
        out = await call(TOOLS["set_quote"], case_id=created["id"], amount_yen=said)
        assert out["needs_confirmation"] is True

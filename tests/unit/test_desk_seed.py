"""Demo data: realistic, deterministic, every status, with history."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from desk import CaseStatus, Desk
from desk.seed import seed
from tests.support.postgres import desk_target, postgres  # noqa: F401

NOW = dt.datetime(2030, 6, 1, 9, 0, tzinfo=dt.UTC)


def content(desk: Desk) -> list[dict[str, Any]]:
    """Everything but time stamps and dates (they are laid out back from ``now``)."""
    out = []
    for case in desk.list_cases(limit=100):
        data = case.to_dict()
        for key in ("created_at", "updated_at", "return_date"):
            data.pop(key)
        for entry in data["notes"] + data["history"]:
            entry.pop("at")
            if entry.get("action") == "return_date":
                entry["old"] = entry["new"] = None
        out.append(data)
    return out


def test_seed_is_deterministic_and_covers_every_status(tmp_path: Path) -> None:
    first = Desk.open(tmp_path / "a.sqlite3")
    cases = seed(first, customers=30, rng_seed=3, now=NOW)
    assert 30 <= len(cases) <= 60
    assert {c.status for c in cases} == set(CaseStatus)
    assert len({c.device_type for c in cases}) >= 5

    second = Desk.open(tmp_path / "b.sqlite3")
    seed(second, customers=30, rng_seed=3, now=NOW + dt.timedelta(days=1))
    assert content(first) == content(second)  # same data, only the clock differs

    other = Desk.open(tmp_path / "c.sqlite3")
    seed(other, customers=30, rng_seed=4, now=NOW)
    assert content(other) != content(first)


@pytest.fixture
def desk(desk_target: str) -> Iterator[Desk]:  # noqa: F811 (a fixture)
    desk = Desk.open(desk_target)
    yield desk
    desk.close()


def test_seeded_cases_read_like_real_work(desk: Desk) -> None:
    seed(desk, customers=40, now=NOW)
    cases = desk.list_cases(limit=100)
    names = [c.customer_name for c in cases]
    assert any(re.search(r"[\u4e00-\u9fff]", n) for n in names)  # kanji
    assert any(re.search(r"[\u30a0-\u30ff]", n) for n in names)  # katakana
    assert any(re.fullmatch(r"[A-Za-z' ]+", n) for n in names)  # Latin
    actors = {h.changed_by for c in cases for h in c.history}
    assert "agent" in actors and any(a.startswith("staff:") for a in actors)
    for case in cases:
        stamps = [h.at for h in case.history]
        assert stamps == sorted(stamps) and stamps[-1] < NOW
        assert NOW - case.created_at < dt.timedelta(days=61)
        assert case.history[0].action == "created"
        if case.status in (CaseStatus.QUOTED, CaseStatus.APPROVED, CaseStatus.RECOVERING):
            assert case.quote_yen is not None
        if case.status is CaseStatus.RETURNED:
            assert case.return_date is not None and case.quote_yen is not None
        if case.status is CaseStatus.CANCELLED:
            assert case.notes[-1].text.startswith("Cancelled: ")
    # Lookup works on the demo data the way a caller would use it.
    some = next(c for c in cases if c.phone)
    digits = (some.phone or "")[-4:]
    assert some.id in [c.id for c in desk.find_cases(phone=digits, limit=100)]

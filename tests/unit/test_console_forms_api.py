"""The console's forms by hand (token_server/console.py): create a case, set a quote only
once confirmed, the queue's date range; each answer is what the page shows (the case, or a
sentence naming the field), and only staff may use them."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from desk import Desk
from tests.unit.test_token_helpers import make_client

STAFF = "forms-staff-key"
CALLER = "forms-caller-key"
UTC = dt.UTC
NEW = {
    "customer_name": "Aoki Ren",
    "phone": "090-5555-0101",
    "email": "Ren.Aoki@Example.jp",
    "device_type": "SSD",
    "symptom": "Not detected after a fall",
}


def opened_at(desk: Desk, when: dt.datetime, name: str, device: str = "HDD") -> str:
    return (
        Desk(desk.store, clock=lambda: when)
        .create_case(customer_name=name, device_type=device, symptom="clicks")
        .id
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "desk.sqlite3"


@pytest.fixture
def client(db: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    Desk.open(db).close()
    monkeypatch.setenv("KAIWA_DESK_DB", str(db))
    monkeypatch.setenv("KAIWA_TIMEZONE", "Asia/Tokyo")
    keys = f"{STAFF} identity=alice staff, {CALLER} identity=bob"
    with make_client(token_auth="bearer", token_bearer_keys=keys) as c:
        c.headers["Authorization"] = f"Bearer {STAFF}"
        yield c


def rows(db: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


# ------------------------------------------------------------------ create a case


def test_create_a_case_by_hand(client: TestClient, db: Path) -> None:
    answer = client.post("/api/console/cases", json=NEW, headers={"Idempotency-Key": "form-1"})
    assert answer.status_code == 201, answer.text
    case = answer.json()
    assert case["id"] == "R-1001" and case["status"] == "received"
    assert (case["customer_name"], case["email"]) == ("Aoki Ren", "ren.aoki@example.jp")
    assert case["history"][0]["actor"] == "staff:alice" and case["calls"] == []
    assert rows(db, "SELECT customer_name, device_type FROM cases") == [("Aoki Ren", "SSD")]
    # and the queue shows it
    queue = client.get("/api/console/cases").json()
    assert [r["id"] for r in queue["cases"]] == ["R-1001"]


@pytest.mark.parametrize(
    ("change", "field", "sentence"),
    [
        ({"customer_name": "  "}, "customer_name", "The customer's name is missing"),
        ({"phone": "12"}, "phone", "The phone number given is too short"),
        ({"email": "ren@"}, "email", "doesn't look complete"),
        ({"device_type": "toaster"}, "device_type", "I don't know the device type 'toaster'"),
        ({"device_type": None}, "device_type", "Please choose the device type."),
        ({"symptom": ""}, "symptom", "The symptom description is empty"),
        ({"phone": 9012345678}, "phone", "phone must be text"),
    ],
)
def test_bad_input_is_a_sentence_for_the_field(
    client: TestClient, db: Path, change: dict[str, Any], field: str, sentence: str
) -> None:
    answer = client.post("/api/console/cases", json={**NEW, **change})
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["error"] == "invalid_request" and body["field"] == field
    assert sentence in body["detail"]
    assert rows(db, "SELECT COUNT(*) FROM cases") == [(0,)]


def test_a_body_that_is_not_an_object_is_refused(client: TestClient) -> None:
    for bad in (b"not json", b"[1, 2]"):
        answer = client.post(
            "/api/console/cases", content=bad, headers={"Content-Type": "application/json"}
        )
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_request"


def test_double_submit_with_the_same_key_opens_one_case(client: TestClient, db: Path) -> None:
    key = {"Idempotency-Key": "form-7f3a"}
    first = client.post("/api/console/cases", json=NEW, headers=key)
    second = client.post("/api/console/cases", json=NEW, headers=key)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    assert rows(db, "SELECT COUNT(*) FROM cases") == [(1,)]
    # a refused first try doesn't use the key up: corrected, the same form still opens it
    other = {"Idempotency-Key": "form-8b1c"}
    refused = client.post("/api/console/cases", json={**NEW, "phone": "12"}, headers=other)
    assert refused.status_code == 400
    fixed = client.post("/api/console/cases", json={**NEW, "customer_name": "Ito"}, headers=other)
    assert fixed.status_code == 201 and fixed.json()["id"] == "R-1002"
    # the same key for something else is a sentence, and nothing is written
    reused = client.post("/api/console/cases", json={**NEW, "symptom": "wet"}, headers=key)
    assert reused.status_code == 400 and "already used" in reused.json()["detail"]
    assert rows(db, "SELECT COUNT(*) FROM cases") == [(2,)]


# ------------------------------------------------------------------ the quote


@pytest.fixture
def diagnosing(client: TestClient, db: Path) -> str:
    desk = Desk.open(db)
    try:
        case = desk.create_case(customer_name="Mori", device_type="HDD", symptom="clicks")
        desk.update_status(case.id, "diagnosing")
    finally:
        desk.close()
    return case.id


def test_the_quote_is_not_applied_without_confirm(
    client: TestClient, db: Path, diagnosing: str
) -> None:
    for body in ({"amount_yen": "55,000"}, {"amount_yen": 55_000, "confirm": False}):
        answer = client.post(f"/api/console/cases/{diagnosing}/quote", json=body)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {
            "applied": False,
            "proposal": {"case_id": diagnosing, "amount_yen": 55_000,
                         "current_quote_yen": None, "status": "diagnosing"},
        }  # fmt: skip
    assert rows(db, "SELECT quote_yen, status FROM cases") == [(None, "diagnosing")]
    assert rows(db, "SELECT COUNT(*) FROM history WHERE action = 'quote_yen'") == [(0,)]


def test_the_quote_is_applied_once_confirmed_by_staff(
    client: TestClient, db: Path, diagnosing: str
) -> None:
    path = f"/api/console/cases/{diagnosing}/quote"
    key = {"Idempotency-Key": "quote-1"}
    answer = client.post(path, json={"amount_yen": 55_000, "confirm": True}, headers=key)
    assert answer.status_code == 200, answer.text
    case = answer.json()
    assert (case["quote_yen"], case["status"]) == (55_000, "quoted")
    assert rows(db, "SELECT quote_yen, status FROM cases") == [(55_000, "quoted")]
    assert rows(db, "SELECT actor, new FROM history WHERE action = 'quote_yen'") == [
        ("staff:alice", "55000")
    ]
    # a double click on Confirm: one change
    again = client.post(path, json={"amount_yen": 55_000, "confirm": True}, headers=key)
    assert again.status_code == 200 and again.json()["quote_yen"] == 55_000
    assert rows(db, "SELECT COUNT(*) FROM history WHERE action = 'quote_yen'") == [(1,)]


def test_quote_refusals_are_sentences(client: TestClient, db: Path, diagnosing: str) -> None:
    path = f"/api/console/cases/{diagnosing}/quote"
    bad = client.post(path, json={"amount_yen": "fifty"})
    assert bad.status_code == 400 and bad.json()["field"] == "quote_yen"
    assert "whole number of yen" in bad.json()["detail"]
    assert client.post(path, json={"amount_yen": 1, "confirm": "yes"}).status_code == 400
    missing = client.post("/api/console/cases/R-9999/quote", json={"amount_yen": 1})
    assert missing.status_code == 404 and "There is no case R-9999" in missing.json()["detail"]
    received = client.post(
        "/api/console/cases", json=NEW, headers={"Idempotency-Key": "new-received"}
    ).json()["id"]
    early = client.post(f"/api/console/cases/{received}/quote", json={"amount_yen": 1000})
    assert early.status_code == 400
    assert "only be set while it is diagnosing or quoted" in early.json()["detail"]
    assert rows(db, "SELECT COUNT(*) FROM cases WHERE quote_yen IS NOT NULL") == [(0,)]


# ------------------------------------------------------------------ the date range


@pytest.fixture
def dated(client: TestClient, db: Path) -> dict[str, str]:
    """Cases opened on days (Tokyo): 2026-03-01 (late evening), 03-02 (00:30 Tokyo, still
    03-01 in UTC), 03-05 (an SSD), 03-09."""
    desk = Desk.open(db)
    try:
        return {
            "mar1": opened_at(desk, dt.datetime(2026, 3, 1, 14, 0, tzinfo=UTC), "Abe"),
            "mar2": opened_at(desk, dt.datetime(2026, 3, 1, 15, 30, tzinfo=UTC), "Baba"),
            "mar5": opened_at(desk, dt.datetime(2026, 3, 5, 3, 0, tzinfo=UTC), "Chiba", "SSD"),
            "mar9": opened_at(desk, dt.datetime(2026, 3, 9, 3, 0, tzinfo=UTC), "Doi"),
        }
    finally:
        desk.close()


def shown(client: TestClient, query: str) -> list[str]:
    answer = client.get(f"/api/console/cases?sort=created_at&dir=asc&{query}")
    assert answer.status_code == 200, answer.text
    return [r["id"] for r in answer.json()["cases"]]


def test_date_range_shows_only_cases_opened_in_it(
    client: TestClient, dated: dict[str, str]
) -> None:
    assert shown(client, "from=2026-03-02&to=2026-03-05") == [dated["mar2"], dated["mar5"]]
    assert shown(client, "from=2026-03-05") == [dated["mar5"], dated["mar9"]]
    assert shown(client, "to=2026-03-01") == [dated["mar1"]]
    assert shown(client, "from=2026-03-09&to=2026-03-09") == [dated["mar9"]]
    assert shown(client, "from=&to=") == list(dated.values())
    # combined with the other filters
    assert shown(client, "from=2026-03-01&to=2026-03-06&device=SSD") == [dated["mar5"]]
    assert shown(client, "from=2026-03-01&to=2026-03-06&q=baba") == [dated["mar2"]]
    assert shown(client, f"from=2026-03-06&q={dated['mar2']}") == []
    assert shown(client, "from=2026-03-01&status=quoted") == []
    assert client.get("/api/console/me").json()["timezone"] == "Asia/Tokyo"


@pytest.mark.parametrize(
    ("query", "field", "sentence"),
    [
        ("from=2026-02-30", "from", "'2026-02-30' is not a date"),
        ("to=yesterday", "to", "give the to date as year-month-day"),
        ("from=2026-03-09&to=2026-03-01", "from", "is after the 'to' date"),
    ],
)
def test_bad_dates_are_sentences(client: TestClient, query: str, field: str, sentence: str) -> None:
    answer = client.get(f"/api/console/cases?{query}")
    assert answer.status_code == 400
    body = answer.json()
    assert (body["error"], body["field"]) == ("invalid_request", field)
    assert sentence in body["detail"]


# ------------------------------------------------------------------ staff only


def test_forms_are_for_staff_only(client: TestClient, db: Path, diagnosing: str) -> None:
    calls = [
        ("post", "/api/console/cases", NEW),
        ("post", f"/api/console/cases/{diagnosing}/quote", {"amount_yen": 1, "confirm": True}),
        ("get", "/api/console/cases?from=2026-03-01", None),
    ]
    for method, path, body in calls:
        refused = client.request(
            method, path, json=body, headers={"Authorization": f"Bearer {CALLER}"}
        )
        assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
        anonymous = client.request(method, path, json=body, headers={"Authorization": ""})
        assert anonymous.status_code == 401
    assert rows(db, "SELECT COUNT(*), MAX(quote_yen) FROM cases") == [(1, None)]

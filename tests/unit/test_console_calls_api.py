"""The console's call endpoints (token_server/console.py): list, detail with the timeline
in time order, the calls on a case, and the same staff-only rules as the rest."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from desk import Desk
from desk.calls import CallBatch, RecoveryRecord, Segment, ToolRecord, TurnRecord, Usage
from tests.unit.test_token_helpers import make_client

STAFF = "calls-staff-key"
CALLER = "calls-caller-key"
T0 = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)


def at(s: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=s)


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    db = tmp_path / "desk.sqlite3"
    desk = Desk.open(db)
    case = desk.create_case(
        customer_name="Ann Lee", device_type="HDD", symptom="clicking", phone="090-1234-5678"
    )
    desk.calls.write(
        CallBatch(
            scope="room-1:AJ_1",
            room="room-1",
            job_id="AJ_1",
            started_at=at(0),
            role="staff",
            identity="clerk",
            channel="web",
            currency="USD",
            segments=[
                Segment(at(1), "agent", "Hello."),
                Segment(at(3), "caller", "Open a case."),
                Segment(at(6), "agent", "Opened", interrupted=True),
            ],
            tools=[ToolRecord(at(4), "fc-1", "create_case", "{}", "ok", 120, case_id=case.id)],
            recoveries=[RecoveryRecord(at(5), "gemini_reconnect", 0.4, '{"code": 1011}')],
            turns=[TurnRecord(at(3), 500), TurnRecord(at(7), 900)],
            usage=Usage(input_audio=10, output_audio=20),
            cost=0.002,
        )
    )
    desk.calls.write(CallBatch(scope="room-1:AJ_1", room="room-1", job_id="AJ_1", ended_at=at(9)))
    desk.calls.write(
        CallBatch(scope="room-2:AJ_2", room="room-2", job_id="AJ_2", started_at=at(60))
    )
    desk.close()
    monkeypatch.setenv("KAIWA_DESK_DB", str(db))
    keys = f"{STAFF} identity=alice staff, {CALLER} identity=bob"
    with make_client(token_auth="bearer", token_bearer_keys=keys) as c:
        c.headers["Authorization"] = f"Bearer {STAFF}"
        c.case_id = case.id  # type: ignore[attr-defined]
        yield c


def test_call_list_is_most_recent_first(client: TestClient) -> None:
    body = client.get("/api/console/calls").json()
    rooms = [c["room"] for c in body["calls"]]
    assert rooms == ["room-2", "room-1"]
    first = body["calls"][1]
    assert first["ref"] == f"C-{first['id']}" and first["duration_s"] == 9.0
    assert first["end_reason"] == "ended" and first["cost"] == pytest.approx(0.002)
    assert body["calls"][0]["duration_s"] is None  # still going


def test_call_detail_has_the_timeline_in_order(client: TestClient) -> None:
    [_, call] = client.get("/api/console/calls").json()["calls"]
    body = client.get(f"/api/console/calls/{call['ref']}").json()
    kinds = [
        (i["kind"], i.get("speaker") or i.get("name") or i.get("recovery"))
        for i in body["timeline"]
    ]
    assert kinds == [
        ("segment", "agent"),
        ("segment", "caller"),
        ("tool", "create_case"),
        ("recovery", "gemini_reconnect"),
        ("segment", "agent"),
    ]
    assert body["timeline"][-1]["interrupted"] is True
    assert body["timeline"][3]["detail"] == {"code": 1011}
    assert (body["call"]["latency_p50_ms"], body["call"]["latency_p95_ms"]) == (500, 900)
    assert len(body["turns"]) == 2
    assert client.get("/api/console/calls/C-9999").status_code == 404
    assert client.get("/api/console/calls/nonsense").json()["error"] == "not_found"


def test_case_detail_lists_its_calls(client: TestClient) -> None:
    case_id = client.case_id  # type: ignore[attr-defined]
    body = client.get(f"/api/console/cases/{case_id}").json()
    assert [c["room"] for c in body["calls"]] == ["room-1"]
    assert [
        c["room"] for c in client.get(f"/api/console/calls?case={case_id}").json()["calls"]
    ] == ["room-1"]
    noted = client.post(f"/api/console/cases/{case_id}/notes", json={"text": "called back"})
    assert noted.status_code == 200 and noted.json()["calls"][0]["room"] == "room-1"


def test_calls_are_for_staff_only(client: TestClient) -> None:
    for path in ("/api/console/calls", "/api/console/calls/1"):
        refused = client.get(path, headers={"Authorization": f"Bearer {CALLER}"})
        assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
        anonymous = client.get(path, headers={"Authorization": ""})
        assert anonymous.status_code == 401

"""Recovery cannot be forged: only dispatch metadata that kaiwa's worker signed for this
room, recently, makes a job a replacement (apology greeting, resumed conversation)."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace

import pytest
from livekit.protocol import agent as agent_pb
from livekit.protocol import models

from agent.lifecycle import (
    RECOVERY_KEY,
    RecoveryInfo,
    call_scope,
    job_recovery,
    recovery_from_metadata,
)
from agent.settings import Settings

SECRET = "kaiwa-unit-secret-0123456789abcdef0123456789"
ROOM = "kaiwa-abc123"
NOW = 1_800_000_000.0


def genuine(**over: object) -> RecoveryInfo:
    base: dict[str, object] = {
        "kind": "job_crash",
        "previous_job_id": "AJ_dead",
        "crashed_at": NOW - 5,
        "attempt": 1,
        "scope": "AJ_first",
    }
    base.update(over)
    return RecoveryInfo(**base)  # type: ignore[arg-type]


def parse(metadata: str | None, room: str = ROOM, **kw: float) -> RecoveryInfo | None:
    return recovery_from_metadata(
        metadata,
        room=room,
        secret=SECRET,
        max_age_s=kw.get("max_age_s", 600.0),
        now=kw.get("now", NOW),
        job_id="AJ_new",
    )


def test_genuine_metadata_is_recovery() -> None:
    info = genuine()
    got = parse(info.to_metadata(room=ROOM, secret=SECRET))
    assert got == info
    assert call_scope("AJ_new", got) == "AJ_first"


def test_worker_lost_kind_is_recovery_too() -> None:
    info = genuine(kind="worker_lost", attempt=2)
    assert parse(info.to_metadata(room=ROOM, secret=SECRET)) == info


def _block(metadata: str) -> dict[str, object]:
    block = json.loads(metadata)[RECOVERY_KEY]
    assert isinstance(block, dict)
    return block


def _meta(block: dict[str, object]) -> str:
    return json.dumps({RECOVERY_KEY: block})


@pytest.mark.parametrize(
    ("case", "change"),
    [
        ("unsigned", lambda b: b.pop("sig")),
        ("empty signature", lambda b: b.update(sig="")),
        ("forged signature", lambda b: b.update(sig="0" * 64)),
        ("another conversation's scope", lambda b: b.update(scope="AJ_victim")),
        ("another previous job", lambda b: b.update(previous_job_id="AJ_other")),
        ("a later crash time", lambda b: b.update(crashed_at=NOW - 1)),
        ("another attempt", lambda b: b.update(attempt=2)),
        ("another kind", lambda b: b.update(kind="worker_lost")),
        ("an unknown kind", lambda b: b.update(kind="anything")),
        ("not an object", lambda b: b.clear()),
    ],
)
def test_tampered_metadata_is_a_new_call(
    case: str, change: object, caplog: pytest.LogCaptureFixture
) -> None:
    block = _block(genuine().to_metadata(room=ROOM, secret=SECRET))
    change(block)  # type: ignore[operator]
    with caplog.at_level(logging.WARNING, logger="kaiwa.lifecycle"):
        assert parse(_meta(block)) is None, case
    (rec,) = [r for r in caplog.records if r.name == "kaiwa.lifecycle"]
    assert "treating it as a new call" in rec.getMessage()
    assert SECRET not in rec.getMessage()
    assert rec.__dict__["room"] == ROOM and rec.__dict__["job_id"] == "AJ_new"


def test_old_unsigned_format_is_a_new_call() -> None:
    # what the worker wrote before signing (and what anybody can write)
    legacy = json.dumps(
        {
            RECOVERY_KEY: {
                "kind": "job_crash",
                "previous_job_id": "AJ_dead",
                "crashed_at": NOW - 5,
                "attempt": 1,
                "scope": "AJ_victim",
            }
        }
    )
    assert parse(legacy) is None


def test_signed_for_another_room_is_a_new_call() -> None:
    metadata = genuine().to_metadata(room="kaiwa-other-room", secret=SECRET)
    assert parse(metadata) is None


def test_signed_with_another_secret_is_a_new_call() -> None:
    metadata = genuine().to_metadata(room=ROOM, secret="another-deployment-secret-0123456789")
    assert parse(metadata) is None


def test_expired_metadata_is_a_new_call(caplog: pytest.LogCaptureFixture) -> None:
    metadata = genuine(crashed_at=NOW - 601).to_metadata(room=ROOM, secret=SECRET)
    with caplog.at_level(logging.WARNING, logger="kaiwa.lifecycle"):
        assert parse(metadata) is None
    assert "expired" in caplog.text
    assert parse(metadata, max_age_s=700) is not None


def test_crash_from_the_future_is_a_new_call() -> None:
    metadata = genuine(crashed_at=NOW + 3600).to_metadata(room=ROOM, secret=SECRET)
    assert parse(metadata) is None


@pytest.mark.parametrize(
    "metadata",
    [None, "", "{}", '{"customer": "x"}', "plain text", '["kaiwa"]'],
)
def test_ordinary_metadata_is_quietly_no_recovery(
    metadata: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="kaiwa.lifecycle"):
        assert parse(metadata) is None
    assert not caplog.records


def test_malformed_recovery_block_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="kaiwa.lifecycle"):
        assert parse('{"kaiwa_recovery": "yes please"}') is None
        assert parse("kaiwa_recovery{{{") is None
    assert len(caplog.records) == 2


def test_job_recovery_checks_the_jobs_own_room() -> None:
    settings = Settings(livekit_api_secret=SECRET, recovery_max_age_s=600)  # type: ignore[arg-type]
    info = genuine(crashed_at=time.time() - 1)
    metadata = info.to_metadata(room=ROOM, secret=SECRET)

    def job(room: str) -> agent_pb.Job:
        return agent_pb.Job(id="AJ_new", room=models.Room(name=room), metadata=metadata)

    # crashed_at travels with millisecond precision
    assert job_recovery(job(ROOM), settings) == replace(info, crashed_at=round(info.crashed_at, 3))
    assert job_recovery(job("kaiwa-other"), settings) is None
    assert call_scope("AJ_new", job_recovery(job("kaiwa-other"), settings)) == "AJ_new"

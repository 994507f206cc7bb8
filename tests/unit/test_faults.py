"""agent.faults: one structured log line and the metrics per recovery."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import REGISTRY

from agent.faults import record_recovery


def _value(name: str, kind: str) -> float:
    return REGISTRY.get_sample_value(name, {"kind": kind}) or 0.0


def test_record_recovery_logs_one_line_and_counts(caplog: pytest.LogCaptureFixture) -> None:
    before = _value("kaiwa_recoveries_total", "unit_test")
    before_n = _value("kaiwa_recovery_seconds_count", "unit_test")
    with caplog.at_level(logging.INFO, logger="kaiwa.faults"):
        record_recovery("unit_test", 1.25, replayed_turns=3, name="clash", note="two words")
    records = [r for r in caplog.records if r.name == "kaiwa.faults"]
    assert len(records) == 1
    rec = records[0]
    msg = rec.getMessage()
    assert "kind=unit_test" in msg and "duration_s=1.250" in msg
    assert "replayed_turns=3" in msg and "note='two words'" in msg
    assert rec.__dict__["fault_kind"] == "unit_test"
    assert rec.__dict__["recovery_s"] == 1.25
    assert rec.__dict__["replayed_turns"] == 3
    assert rec.__dict__["detail_name"] == "clash"  # reserved LogRecord key, renamed
    assert _value("kaiwa_recoveries_total", "unit_test") == before + 1
    assert _value("kaiwa_recovery_seconds_count", "unit_test") == before_n + 1

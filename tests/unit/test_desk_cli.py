"""Operator CLI, run as a real subprocess the way an operator would."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from desk import Desk
from tests.support.postgres import PostgresServer, postgres  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


def run(
    *args: str, env_db: Path | str | None = None, dev: bool = False
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KAIWA_DESK_DB", "KAIWA_DEV")}
    if env_db is not None:
        env["KAIWA_DESK_DB"] = str(env_db)
    if dev:
        env["KAIWA_DEV"] = "1"
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "desk", *args],
        capture_output=True, text=True, timeout=30, env=env, cwd=ROOT,
    )  # fmt: skip


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "desk.sqlite3"
    desk = Desk.open(path)
    case = desk.create_case(customer_name="タナカ ハナコ", phone="090-1234-5678",
                            device_type="hard disk", symptom="clicking noise")  # fmt: skip
    desk.update_status(case.id, "diagnosing", actor="tech")
    desk.set_quote(case.id, 45_000, actor="tech")
    desk.add_note(case.id, "customer prefers email", actor="reception")
    desk.schedule_return(case.id, dt.date(2099, 1, 31), kind="pickup")
    desk.create_case(customer_name="Sato", device_type="sd", symptom="card unreadable")
    return path


def test_list(db: Path) -> None:
    out = run("--db", str(db), "list")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:4] == ["ID", "STATUS", "DEVICE", "CUSTOMER"]
    assert lines[1].startswith("R-1002") and "Sato" in lines[1]
    assert "R-1001" in lines[2] and "タナカ ハナコ" in lines[2] and "45,000" in lines[2]
    assert "pickup 2099-01-31" in lines[2]


def test_list_by_status_via_env(db: Path) -> None:
    out = run("list", "--status", "quoted", env_db=db)
    assert out.returncode == 0, out.stderr
    assert "R-1001" in out.stdout and "R-1002" not in out.stdout
    assert run("list", "--status", "ready", env_db=db).stdout.strip() == "No cases."


def test_show_tolerates_spoken_id(db: Path) -> None:
    out = run("--db", str(db), "show", "r 1001")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("R-1001  [quoted]")
    for text in ("タナカ ハナコ", "090-1234-5678", "HDD", "clicking noise", "45,000 yen",
                 "pickup on 2099-01-31", "reception: customer prefers email"):  # fmt: skip
        assert text in out.stdout


def test_history(db: Path) -> None:
    out = run("--db", str(db), "history", "R-1001")
    assert out.returncode == 0, out.stderr
    assert "received" in out.stdout and "diagnosing" in out.stdout
    assert "quote_yen" in out.stdout and "45000" in out.stdout
    assert len(out.stdout.splitlines()) == 2 + len(Desk.open(db).get_case("R-1001").history)


def test_unknown_id_exits_2_with_one_line(db: Path) -> None:
    out = run("--db", str(db), "show", "R-9999")
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr.strip().splitlines() == [
        "error: There is no case R-9999; please check the number."
    ]


def test_missing_database_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "desk.sqlite3"
    out = run("--db", str(missing), "list")
    assert out.returncode == 2 and "no case database" in out.stderr
    assert not missing.parent.exists()


def test_history_shows_who_changed_what(db: Path) -> None:
    Desk.open(db).add_note("R-1001", "called the customer", actor="staff:alice")
    out = run("--db", str(db), "history", "R-1001")
    assert out.stdout.splitlines()[1].split()[:3] == ["AT", "CHANGED", "BY"]
    assert "staff:alice" in out.stdout.splitlines()[-1]
    shown = run("--db", str(db), "show", "R-1001").stdout
    assert re.search(r"Changed: +\S+ by staff:alice", shown)


def test_seed_only_in_development(tmp_path: Path) -> None:
    path = tmp_path / "demo" / "desk.sqlite3"
    out = run("--db", str(path), "seed")
    assert out.returncode == 2 and "KAIWA_DEV=1" in out.stderr and not path.exists()

    out = run("seed", "--customers", "12", env_db=path, dev=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Added ") and "for 12 customers" in out.stdout
    count = len(Desk.open(path).list_cases(limit=100))
    assert count >= 12

    out = run("--db", str(path), "seed", "--dev")  # not on a desk that has cases
    assert out.returncode == 2 and "--force" in out.stderr
    assert len(Desk.open(path).list_cases(limit=100)) == count

    out = run("--db", f"sqlite:///{path}", "seed", "--dev", "--force", "--customers", "3")
    assert out.returncode == 0, out.stderr
    assert len(Desk.open(path).list_cases(limit=100)) > count


def test_postgresql_url(postgres: PostgresServer) -> None:  # noqa: F811 (a fixture)
    url = postgres.url(postgres.fresh_schema())
    out = run("seed", "--customers", "5", env_db=url, dev=True)
    assert out.returncode == 0, out.stderr
    assert "postgresql://postgres@/desk_test" in out.stdout  # described, not the URL
    out = run("--db", url, "list")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].split()[:2] == ["ID", "STATUS"]
    assert len(out.stdout.splitlines()) == 1 + len(Desk.open(url).list_cases(limit=100))

"""Background jobs: the allow-list, parameter validation, templating into an argv (never a
shell string), running, cancelling (the process group) and the record in the desk."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from agent.jobs import (
    JobManager,
    JobRefused,
    JobRun,
    JobSpec,
    command_for,
    example_jobs,
    fill,
    fill_json,
    jobs_from_json,
    validate_parameters,
)
from agent.settings import Settings
from agent.tools.jobs import build_job_tools, start_job_schema
from desk import Desk
from desk.jobs import JobRecords

EXAMPLES = {s.name: s for s in example_jobs(diagnose_s=0.4)}
REPORT, DIAGNOSE = EXAMPLES["recovery_report"], EXAMPLES["diagnose_image"]


def free_text_job(**extra: Any) -> JobSpec:
    return JobSpec.model_validate(
        {
            "name": "echo_label",
            "description": "Print a label.",
            "argv": ["{python}", "-c", "import sys; print(sys.argv[1:])", "{label}"],
            "parameters": {
                "type": "object",
                "properties": {
                    "label": {"type": "string"},
                    "copies": {"type": "integer", "maximum": 5},
                },
                "required": ["label"],
            },
            **extra,
        }
    )


# ------------------------------------------------------------------ validation


def test_examples_accept_their_parameters() -> None:
    assert validate_parameters(REPORT, {"case_id": "R-1042"}) == {"case_id": "R-1042"}
    assert validate_parameters(REPORT, {"case_id": 1042}) == {"case_id": "1042"}
    assert validate_parameters(DIAGNOSE, {"image": "disk-01.img"}) == {"image": "disk-01.img"}
    assert validate_parameters(DIAGNOSE, {"image": "lab/disk_2.img"}) == {"image": "lab/disk_2.img"}


@pytest.mark.parametrize(
    ("spec", "params"),
    [
        (REPORT, {"case_id": "R-1042; rm -rf /"}),
        (REPORT, {"case_id": "$(reboot)"}),
        (REPORT, {"case_id": "`id`"}),
        (REPORT, {"case_id": "R-1042 && curl evil"}),
        (REPORT, {"case_id": "--help"}),
        (REPORT, {"case_id": "R-1042\nid"}),
        (DIAGNOSE, {"image": "../../etc/passwd"}),
        (DIAGNOSE, {"image": "/etc/shadow"}),
        (DIAGNOSE, {"image": "disk.img | nc host 1"}),
        (DIAGNOSE, {"image": "disk.img > /tmp/x"}),
        (DIAGNOSE, {"image": "-rf"}),
        (DIAGNOSE, {"image": "x" * 500}),
        (DIAGNOSE, {"image": ["a", "b"]}),
        (DIAGNOSE, {"image": "disk.img", "extra": "--exec=sh"}),
        (DIAGNOSE, {}),
        (DIAGNOSE, "image=disk.img"),
    ],
)
def test_injection_and_bad_parameters_are_refused_with_a_sentence(
    spec: JobSpec, params: Any
) -> None:
    with pytest.raises(JobRefused) as e:
        validate_parameters(spec, params)
    text = str(e.value)
    assert text.endswith(".") and text[0].isupper(), text
    assert "Traceback" not in text and "pydantic" not in text


def test_free_text_still_refuses_shell_characters_and_options() -> None:
    spec = free_text_job()
    assert validate_parameters(spec, {"label": "hello world"}) == {"label": "hello world"}
    for bad in ("a;b", "$HOME", "a`b`", "-x", "a\x00b", "{python}"):
        with pytest.raises(JobRefused, match="Nothing was started"):
            validate_parameters(spec, {"label": bad})
    with pytest.raises(JobRefused, match="at most 5"):
        validate_parameters(spec, {"label": "x", "copies": 9})
    assert validate_parameters(spec, {"label": "x", "copies": "3"})["copies"] == 3


def test_values_fill_argv_items_never_a_shell_string(tmp_path: Path) -> None:
    spec = free_text_job()
    argv = command_for(spec, {"label": "hello world"}, job_id="J-1", data_dir=tmp_path)
    assert argv == [sys.executable, "-c", "import sys; print(sys.argv[1:])", "hello world"]
    # a value is substituted once: braces in it are never expanded again
    assert fill("{a}", {"a": "{b}", "b": "x"}) == "{b}"
    assert fill("https://h/api/{a}", {"a": "x/../y?z"}, quote_values=True) == (
        "https://h/api/x%2F..%2Fy%3Fz"
    )
    assert fill_json({"n": "{n}", "s": "case {n}"}, {"n": 3}) == {"n": 3, "s": "case 3"}


def test_the_allow_list_refuses_bad_configuration() -> None:
    with pytest.raises(ValueError, match="not a parameter"):
        JobSpec.model_validate({"name": "x", "description": "d", "argv": ["echo", "{nope}"]})
    with pytest.raises(ValueError, match="either 'argv' or 'http'"):
        JobSpec.model_validate({"name": "x", "description": "d"})
    with pytest.raises(ValueError, match="must match"):
        JobSpec.model_validate({"name": "Bad Name", "description": "d", "argv": ["true"]})
    jobs = jobs_from_json(
        '[{"name": "ping", "description": "Ping the CRM", '
        '"http": {"url": "http://127.0.0.1:9/ping/{who}", "json": {"who": "{who}"}}, '
        '"parameters": {"type": "object", "properties": {"who": {"type": "string"}}}}]'
    )
    assert jobs[0].http is not None and jobs[0].http.json_body == {"who": "{who}"}


def test_settings_ship_two_examples_and_take_more(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("KAIWA_JOBS"):
            monkeypatch.delenv(key)
    s = Settings(_env_file=None)
    assert [j.name for j in s.allowed_jobs()] == ["recovery_report", "diagnose_image"]
    monkeypatch.setenv(
        "KAIWA_JOBS", '[{"name": "hello", "description": "Say hello.", "argv": ["echo", "hi"]}]'
    )
    monkeypatch.setenv("KAIWA_JOBS_EXAMPLES", "false")
    s = Settings(_env_file=None)
    assert [j.name for j in s.allowed_jobs()] == ["hello"]


def test_start_job_declaration_names_the_jobs() -> None:
    schema = start_job_schema(list(EXAMPLES.values()))
    props = schema["parameters"]["properties"]
    assert props["name"]["enum"] == ["recovery_report", "diagnose_image"]
    assert set(props["parameters"]["properties"]) == {"case_id", "image"}
    assert "diagnose_image(image" in schema["description"]
    names = [t.id for t in build_job_tools(list(EXAMPLES.values()))]
    assert names == ["start_job", "job_status", "cancel_job"]
    assert build_job_tools([]) == []


# ------------------------------------------------------------------ running


@pytest.fixture
def desk(tmp_path: Path) -> Desk:
    return Desk.open(tmp_path / "desk.sqlite3")


def manager(desk: Desk, tmp_path: Path, specs: list[JobSpec]) -> JobManager:
    return JobManager(
        specs,
        data_dir=tmp_path / "jobs",
        scope="room:job1",
        records=JobRecords(desk.store),
        desk_db=str(tmp_path / "desk.sqlite3"),
        progress_interval_s=0.05,
    )


async def test_diagnose_runs_with_progress_and_is_recorded(desk: Desk, tmp_path: Path) -> None:
    jobs = manager(desk, tmp_path, [DIAGNOSE])
    seen: list[float | None] = []
    finished: list[JobRun] = []

    async def progress(run: JobRun) -> None:
        seen.append(run.percent)

    jobs.on_progress = progress
    jobs.on_finished = finished.append
    run = await jobs.start("diagnose_image", {"image": "disk-01.img"}, actor="staff:clerk")
    assert run.id.startswith("J-") and run.pid is not None
    await asyncio.wait_for(run.done.wait(), 20)
    await asyncio.sleep(0.1)
    assert run.status == "succeeded" and run.exit_code == 0 and run.percent == 100
    assert "damaged region" in run.summary()
    assert [r.id for r in finished] == [run.id]
    assert len([p for p in seen if p is not None]) >= 3 and seen[-1] == 100
    row = JobRecords(desk.store).get(run.id)
    assert (row.status, row.exit_code, row.actor, row.name) == (
        "succeeded",
        0,
        "staff:clerk",
        "diagnose_image",
    )
    assert row.arguments == {"image": "disk-01.img"} and "PROGRESS 100" in row.output
    assert row.duration_ms is not None and row.duration_ms >= 300
    assert "[kaiwa job" in run.result_instructions() and run.id in run.result_instructions()


async def test_report_of_a_missing_case_fails_with_its_sentence(desk: Desk, tmp_path: Path) -> None:
    jobs = manager(desk, tmp_path, [REPORT])
    run = await jobs.start("recovery_report", {"case_id": "R-9999"}, actor="staff:clerk")
    await asyncio.wait_for(run.done.wait(), 30)
    assert run.status == "failed" and run.exit_code == 2
    assert "R-9999" in run.summary()


async def test_cancel_kills_the_whole_process_group(desk: Desk, tmp_path: Path) -> None:
    spawner = JobSpec.model_validate(
        {
            "name": "spawner",
            "description": "A job with a child process.",
            "argv": [
                "{python}",
                "-c",
                "import subprocess, time; p = subprocess.Popen(['sleep', '60']); "
                "print('child', p.pid, flush=True); time.sleep(60)",
            ],
        }
    )
    jobs = manager(desk, tmp_path, [spawner])
    finished: list[JobRun] = []
    jobs.on_finished = finished.append
    run = await jobs.start("spawner", {}, actor="staff:clerk")
    for _ in range(100):
        if run.lines:
            break
        await asyncio.sleep(0.05)
    child = int(run.lines[-1].split()[1])
    await jobs.cancel(run.id)
    assert run.status == "cancelled"
    for pid in (run.pid, child):
        assert pid is not None
        await _gone(pid)
    assert finished == []  # the canceller already knows: no second telling
    assert JobRecords(desk.store).get(run.id).status == "cancelled"
    with pytest.raises(JobRefused, match="already ended"):
        await jobs.cancel(run.id)


def _zombie(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and " Z " in stat.read_text()


async def _gone(pid: int) -> None:
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        # a zombie child of an exited parent is reaped by init; give it a moment
        if _zombie(pid):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"process {pid} is still running")


async def test_timeout_and_limits(desk: Desk, tmp_path: Path) -> None:
    slow = JobSpec.model_validate(
        {
            "name": "slow",
            "description": "Sleeps.",
            "timeout_s": 0.5,
            "argv": ["{python}", "-c", "import time; time.sleep(30)"],
        }
    )
    jobs = manager(desk, tmp_path, [slow])
    jobs.max_running = 1
    run = await jobs.start("slow", {}, actor="staff:clerk")
    with pytest.raises(JobRefused, match="already running"):
        await jobs.start("slow", {}, actor="staff:clerk")
    with pytest.raises(JobRefused, match="no job called 'rm'"):
        await jobs.start("rm", {}, actor="staff:clerk")
    await asyncio.wait_for(run.done.wait(), 10)
    assert run.status == "timeout"
    assert JobRecords(desk.store).get(run.id).status == "timeout"


async def test_the_job_gets_no_worker_secrets(
    desk: Desk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", "secret-key-123")
    monkeypatch.setenv("LIVEKIT_API_SECRET", "secret-456")
    env_job = JobSpec.model_validate(
        {
            "name": "env",
            "description": "Print the environment.",
            "argv": ["{python}", "-c", "import os; print(sorted(os.environ))"],
        }
    )
    jobs = manager(desk, tmp_path, [env_job])
    run = await jobs.start("env", {}, actor="staff:clerk")
    await asyncio.wait_for(run.done.wait(), 10)
    assert "GOOGLE_API_KEY" not in run.output() and "LIVEKIT_API_SECRET" not in run.output()
    assert "KAIWA_DESK_DB" in run.output()

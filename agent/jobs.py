"""Background jobs: an allow-list of commands (or HTTP calls) the agent may start by voice.

Each job is configured, never composed by the model: a command is an argv list whose items
may hold `{placeholders}`, filled from the job's parameters after they passed the job's
JSON schema (and kaiwa's own rules for text: no shell metacharacters, no leading "-", no
".." path step, no control characters). The process is started with `exec` (no shell), in
its own process group (so a cancel kills everything it spawned), with a small environment
(never the worker's secrets). An HTTP job fills its URL (quoted) and JSON body the same way.

Per call, a `JobManager` (CallState.jobs) runs them: output lines and percent ("PROGRESS
42" or "42%") are kept and pushed to the page, the end (succeeded, failed, cancelled,
timeout) is recorded in the desk (desk/jobs.py) and handed to `on_finished`, which gives
the result to the model once (agent/tools/jobs.py). Every refusal is a sentence.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import re
import secrets
import signal
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, model_validator

from desk.jobs import JobRecords

logger = logging.getLogger("kaiwa.jobs")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = Path(__file__).resolve().parent / "jobs_examples"
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
PLACEHOLDER_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
BUILTINS = ("python", "repo", "data_dir", "job_id")
# refused in any text parameter: harmless under exec, but never what a case id or a file
# name looks like, and a sign that someone tries to inject a command
FORBIDDEN_CHARS = set(";&|$`<>\\\"'*?!{}()[]~#\n\r\t\0")
MAX_TEXT = 200
MAX_LINES = 200
PROGRESS_RE = re.compile(r"^PROGRESS\s+(\d{1,3})(?:\s|$)|(\d{1,3}(?:\.\d+)?)\s*%")
RESULT_PREFIX = "RESULT:"
KILL_GRACE_S = 2.0

Status = Literal["running", "succeeded", "failed", "cancelled", "timeout"]


class JobRefused(Exception):
    """A job that may not start (or be found, or cancelled): the message is a sentence."""


class HttpCall(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    url: str
    json_body: dict[str, Any] | None = Field(None, alias="json")
    headers: dict[str, str] = Field(default_factory=dict)


class JobSpec(BaseModel):
    """One allow-listed job (an item of KAIWA_JOBS)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str
    description: str = Field(min_length=1, max_length=400)
    argv: list[str] | None = None
    http: HttpCall | None = None
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    timeout_s: float = Field(600.0, gt=0, le=24 * 3600)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None

    @model_validator(mode="after")
    def _check(self) -> JobSpec:
        if not NAME_RE.match(self.name):
            raise ValueError(f"job name {self.name!r} must match {NAME_RE.pattern}")
        if (self.argv is None) == (self.http is None):
            raise ValueError(f"job {self.name}: give either 'argv' or 'http'")
        if self.argv is not None and not self.argv:
            raise ValueError(f"job {self.name}: 'argv' is empty")
        p = self.parameters
        if p.get("type", "object") != "object" or not isinstance(p.get("properties", {}), dict):
            raise ValueError(f"job {self.name}: 'parameters' must be an object schema")
        for pname, schema in self.properties.items():
            if not isinstance(schema, dict) or schema.get("type") not in _TYPES:
                raise ValueError(
                    f"job {self.name}: parameter {pname} needs a type of {', '.join(_TYPES)}"
                )
            if "pattern" in schema:
                re.compile(str(schema["pattern"]))
        known = set(self.properties) | set(BUILTINS)
        for template in self._templates():
            for ref in PLACEHOLDER_RE.findall(template):
                if ref not in known:
                    raise ValueError(f"job {self.name}: {{{ref}}} is not a parameter")
        return self

    @property
    def properties(self) -> dict[str, Any]:
        return dict(self.parameters.get("properties") or {})

    @property
    def required(self) -> list[str]:
        return [str(r) for r in self.parameters.get("required") or []]

    def _templates(self) -> list[str]:
        out = list(self.argv or [])
        if self.http is not None:
            out.append(self.http.url)
            out += [v for v in _strings(self.http.json_body)]
            out += list(self.http.headers.values())
        return out

    def describe(self) -> str:
        """One line for the model: the name, what it does, its parameters."""
        params = []
        for pname, schema in self.properties.items():
            mark = "" if pname in self.required else "?"
            hint = schema.get("description") or schema["type"]
            if "enum" in schema:
                hint += f" (one of {', '.join(map(str, schema['enum']))})"
            params.append(f"{pname}{mark}: {hint}")
        return f"{self.name}({'; '.join(params)}) — {self.description}"


_TYPES = ("string", "integer", "number", "boolean")


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


# ------------------------------------------------------------------ the shipped examples


def example_jobs(*, diagnose_s: float) -> list[JobSpec]:
    """The two desk jobs shipped with kaiwa (KAIWA_JOBS_EXAMPLES)."""
    case_id = {
        "type": "string",
        "description": "the case number, e.g. R-1042",
        "pattern": r"^(?:[Rr]-?)?\d{1,7}$",
        "maxLength": 10,
    }
    return [
        JobSpec(
            name="recovery_report",
            description="Generate the HTML recovery report of a case into the reports "
            "folder (a few seconds).",
            argv=[
                "{python}",
                str(EXAMPLES / "recovery_report.py"),
                "--case",
                "{case_id}",
                "--out",
                "{data_dir}/reports/{job_id}.html",
            ],
            parameters={
                "type": "object",
                "properties": {"case_id": case_id},
                "required": ["case_id"],
            },
            timeout_s=120,
        ),
        JobSpec(
            name="diagnose_image",
            description="Run the diagnostic script on a device image (a disk image file "
            "name under the images folder, e.g. disk-01.img); takes tens of seconds.",
            argv=[
                "{python}",
                str(EXAMPLES / "diagnose.py"),
                "--image",
                "{data_dir}/images/{image}",
                "--seconds",
                f"{diagnose_s:g}",
            ],
            parameters={
                "type": "object",
                "properties": {
                    "image": {
                        "type": "string",
                        "description": "the image file name, e.g. disk-01.img",
                        "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)*$",
                        "maxLength": 120,
                    }
                },
                "required": ["image"],
            },
            timeout_s=max(120.0, diagnose_s * 4),
        ),
    ]


# ------------------------------------------------------------------ validation, templating


def validate_parameters(spec: JobSpec, params: Any) -> dict[str, Any]:
    """The parameters, checked against the job's schema and kaiwa's text rules.

    Raises JobRefused with a sentence the model can say."""
    job = spec.name
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise JobRefused(f'The parameters of {job} must be named values, like {{"x": ...}}.')
    props = spec.properties
    unknown = sorted(k for k in params if k not in props)
    if unknown:
        known = ", ".join(props) or "none"
        raise JobRefused(
            f"The job {job} has no parameter {', '.join(unknown)}; its parameters are: {known}. "
            "Nothing was started."
        )
    out: dict[str, Any] = {}
    for pname, schema in props.items():
        value = params.get(pname)
        if value is None:
            if "default" in schema:
                value = schema["default"]
            elif pname in spec.required:
                raise JobRefused(
                    f"The job {job} needs {pname} ({schema.get('description', schema['type'])}). "
                    "Ask for it; nothing was started."
                )
            else:
                continue
        out[pname] = _check_value(job, pname, schema, value)
    return out


def _check_value(job: str, pname: str, schema: dict[str, Any], value: Any) -> Any:
    kind = schema["type"]
    bad = f"Nothing was started: {pname} for {job}"
    if kind == "boolean":
        if not isinstance(value, bool):
            raise JobRefused(f"{bad} must be true or false.")
    elif kind in ("integer", "number"):
        if isinstance(value, str):
            try:
                value = int(value) if kind == "integer" else float(value)
            except ValueError:
                raise JobRefused(f"{bad} must be a number.") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise JobRefused(f"{bad} must be a number.")
        if kind == "integer" and value != int(value):
            raise JobRefused(f"{bad} must be a whole number.")
        if kind == "integer":
            value = int(value)
        if "minimum" in schema and value < schema["minimum"]:
            raise JobRefused(f"{bad} must be at least {schema['minimum']}.")
        if "maximum" in schema and value > schema["maximum"]:
            raise JobRefused(f"{bad} must be at most {schema['maximum']}.")
    else:
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise JobRefused(f"{bad} must be text.")
        value = value.strip()
        limit = min(int(schema.get("maxLength", MAX_TEXT)), MAX_TEXT)
        if len(value) > limit:
            raise JobRefused(f"{bad} is longer than {limit} characters.")
        if len(value) < int(schema.get("minLength", 1)):
            raise JobRefused(f"{bad} is empty.")
        shown = sorted({c for c in value if c in FORBIDDEN_CHARS or ord(c) < 32})
        if shown:
            chars = " ".join(repr(c) for c in shown)
            raise JobRefused(
                f"{bad} contains {chars}, which a job parameter may not hold (it looks like "
                "an attempt to run a command). Use only the value itself."
            )
        if value.startswith("-"):
            raise JobRefused(f"{bad} may not start with '-' (it would read as an option).")
        if ".." in value.split("/") or value.startswith("/"):
            raise JobRefused(f"{bad} must be a plain name, not a path outside its folder.")
    if "enum" in schema and value not in schema["enum"]:
        choices = ", ".join(map(str, schema["enum"]))
        raise JobRefused(f"{bad} must be one of: {choices}.")
    if "pattern" in schema and isinstance(value, str):
        if not re.fullmatch(str(schema["pattern"]), value):
            hint = schema.get("description")
            raise JobRefused(f"{bad} is not in the expected form{f' ({hint})' if hint else ''}.")
    return value


def fill(template: str, values: dict[str, Any], *, quote_values: bool = False) -> str:
    """`{name}` → the value (one pass: a value holding braces is never expanded again)."""

    def sub(m: re.Match[str]) -> str:
        v = values[m.group(1)]
        text = str(v).lower() if isinstance(v, bool) else str(v)
        return quote(text, safe="") if quote_values else text

    return PLACEHOLDER_RE.sub(sub, template)


def fill_json(template: Any, values: dict[str, Any]) -> Any:
    if isinstance(template, str):
        m = PLACEHOLDER_RE.fullmatch(template)
        if m:  # a whole "{x}" keeps the parameter's type
            return values[m.group(1)]
        return fill(template, values)
    if isinstance(template, dict):
        return {k: fill_json(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [fill_json(v, values) for v in template]
    return template


def command_for(spec: JobSpec, params: dict[str, Any], *, job_id: str, data_dir: Path) -> list[str]:
    """The argv to exec (never a shell string)."""
    assert spec.argv is not None
    values = _values(params, job_id=job_id, data_dir=data_dir)
    return [fill(item, values) for item in spec.argv]


def _values(params: dict[str, Any], *, job_id: str, data_dir: Path) -> dict[str, Any]:
    return {
        "python": sys.executable,
        "repo": str(ROOT),
        "data_dir": str(data_dir),
        "job_id": job_id,
        **params,
    }


# ------------------------------------------------------------------ one run


@dataclass
class JobRun:
    id: str
    spec: JobSpec
    params: dict[str, Any]
    actor: str
    started_at: dt.datetime
    started_mono: float
    status: Status = "running"
    exit_code: int | None = None
    percent: float | None = None
    pid: int | None = None
    ended_mono: float | None = None
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=MAX_LINES))
    line_count: int = 0
    result_lines: list[str] = field(default_factory=list)
    delivered: bool = False
    cancel_requested: bool = False
    task: asyncio.Task[None] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    _proc: asyncio.subprocess.Process | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def elapsed_s(self) -> float:
        return (self.ended_mono or time.monotonic()) - self.started_mono

    def add_line(self, line: str) -> None:
        line = line.rstrip()[:500]
        if not line:
            return
        self.lines.append(line)
        self.line_count += 1
        if line.startswith(RESULT_PREFIX):
            self.result_lines.append(line[len(RESULT_PREFIX) :].strip())
        m = PROGRESS_RE.search(line)
        if m:
            pct = float(m.group(1) or m.group(2))
            if 0 <= pct <= 100:
                self.percent = pct

    def output(self) -> str:
        return "\n".join(self.lines)

    def summary(self) -> str:
        """What the job reported: its RESULT: lines, or its last lines."""
        if self.result_lines:
            return " ".join(self.result_lines)[-600:]
        return " / ".join(list(self.lines)[-3:])[-600:] or "no output"

    def snapshot(self, lines: int = 12) -> dict[str, Any]:
        """What the page shows (bounded: about 2 KB at most)."""
        return {
            "id": self.id,
            "name": self.name,
            "args": self.params,
            "status": self.status,
            "percent": self.percent,
            "pid": self.pid,
            "elapsed_s": round(self.elapsed_s, 1),
            "exit_code": self.exit_code,
            "lines": [line[:160] for line in list(self.lines)[-lines:]],
            "line_count": self.line_count,
            "actor": self.actor,
        }

    def status_for_model(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "job_id": self.id,
            "name": self.name,
            "status": self.status,
            "elapsed_s": round(self.elapsed_s),
        }
        if self.percent is not None:
            out["percent"] = round(self.percent)
        if self.status == "running":
            out["latest"] = list(self.lines)[-1] if self.lines else "started, no output yet"
        else:
            out["exit_code"] = self.exit_code
            out["result"] = self.summary()
        return out

    def result_instructions(self) -> str:
        """The one message that gives the model this job's end."""
        args = ", ".join(f"{k}={v}" for k, v in self.params.items())
        how = {
            "succeeded": "finished successfully",
            "failed": f"failed (exit code {self.exit_code})",
            "timeout": f"was stopped after its time limit of {self.spec.timeout_s:g} s",
            "cancelled": "was cancelled",
        }.get(self.status, self.status)
        return (
            f"[kaiwa job {self.id}] The background job {self.name} ({args}) that was started "
            f"earlier in this call {how} after {round(self.elapsed_s)} s. Its result: "
            f"{self.summary()}. Tell the user in one or two short sentences, in their "
            "language, now that you are free; don't start it again."
        )


# ------------------------------------------------------------------ per call


ProgressFn = Callable[[JobRun], Awaitable[None]]
FinishedFn = Callable[[JobRun], None]


class JobManager:
    """One call's jobs: start (validated), status, cancel (kills the process group)."""

    def __init__(
        self,
        specs: list[JobSpec],
        *,
        data_dir: Path,
        scope: str,
        records: JobRecords | None = None,
        max_running: int = 3,
        desk_db: str | None = None,
        progress_interval_s: float = 0.3,
    ) -> None:
        self.specs = {s.name: s for s in specs}
        self.data_dir = data_dir
        self.scope = scope
        self.records = records
        self.max_running = max_running
        self.desk_db = desk_db
        self.progress_interval_s = progress_interval_s
        self.runs: dict[str, JobRun] = {}
        self.on_progress: ProgressFn | None = None
        self.on_finished: FinishedFn | None = None

    # -- what the tools call

    def spec(self, name: str) -> JobSpec:
        spec = self.specs.get(str(name).strip())
        if spec is None:
            known = ", ".join(self.specs) or "none are configured"
            raise JobRefused(
                f"There is no job called {name!r}; the jobs I can run are: {known}. "
                "Nothing was started."
            )
        return spec

    def running(self) -> list[JobRun]:
        return [r for r in self.runs.values() if r.status == "running"]

    def get(self, job_id: str) -> JobRun:
        run = self.runs.get(str(job_id).strip().upper())
        if run is None:
            ids = ", ".join(self.runs) or "none yet"
            raise JobRefused(f"There is no job {job_id} in this call (jobs: {ids}).")
        return run

    async def start(self, name: str, params: Any, *, actor: str) -> JobRun:
        spec = self.spec(name)
        values = validate_parameters(spec, params)
        if len(self.running()) >= self.max_running:
            raise JobRefused(
                f"{len(self.running())} jobs are already running in this call; wait for one "
                "to end or cancel one first. Nothing was started."
            )
        job_id = f"J-{secrets.token_hex(3).upper()}"
        run = JobRun(
            id=job_id,
            spec=spec,
            params=values,
            actor=actor,
            started_at=dt.datetime.now(dt.UTC),
            started_mono=time.monotonic(),
        )
        if spec.argv is not None:
            await self._spawn(run)
        self.runs[job_id] = run
        if self.records is not None:
            await asyncio.to_thread(
                self.records.started,
                job_id,
                scope=self.scope,
                actor=actor,
                name=spec.name,
                arguments=values,
                pid=run.pid,
                started_at=run.started_at,
            )
        run.task = asyncio.get_running_loop().create_task(self._supervise(run))
        logger.info("job started", extra={"job": job_id, "job_name": spec.name, "pid": run.pid})
        return run

    async def cancel(self, job_id: str) -> JobRun:
        run = self.get(job_id)
        if run.status != "running":
            raise JobRefused(f"Job {run.id} ({run.name}) already ended: {run.status}.")
        run.cancel_requested = True
        self._kill(run, signal.SIGTERM)
        if run.task is not None and run._proc is None:
            run.task.cancel()  # an HTTP job
        try:
            await asyncio.wait_for(run.done.wait(), KILL_GRACE_S)
        except TimeoutError:
            self._kill(run, signal.SIGKILL)
            await asyncio.wait_for(run.done.wait(), KILL_GRACE_S + 3)
        return run

    def cancel_all(self) -> int:
        """The call is ending: kill every running job's process group (no waiting)."""
        n = 0
        for run in self.running():
            run.cancel_requested = True
            self._kill(run, signal.SIGKILL)
            if run.task is not None and run._proc is None:
                run.task.cancel()
            n += 1
        return n

    # -- running

    def _env(self, spec: JobSpec) -> dict[str, str]:
        # the job gets a small environment: never the worker's keys and secrets
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
        }
        if self.desk_db:
            env["KAIWA_DESK_DB"] = self.desk_db
        env.update(spec.env)
        return env

    async def _spawn(self, run: JobRun) -> None:
        argv = command_for(run.spec, run.params, job_id=run.id, data_dir=self.data_dir)
        for sub in ("reports", "images"):
            (self.data_dir / sub).mkdir(parents=True, exist_ok=True)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL,
                start_new_session=True,  # its own process group: cancel kills all of it
                env=self._env(run.spec),
                cwd=run.spec.cwd or str(ROOT),
            )
        except OSError as e:
            logger.warning("job could not start: %s", e, extra={"job_name": run.name})
            raise JobRefused(f"The job {run.name} could not be started on this server.") from None
        run._proc = proc
        run.pid = proc.pid

    def _kill(self, run: JobRun, sig: int) -> None:
        if run._proc is None or run._proc.returncode is not None or run.pid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(run.pid, sig)

    async def _supervise(self, run: JobRun) -> None:
        publisher = asyncio.get_running_loop().create_task(self._publish_loop(run))
        try:
            async with asyncio.timeout(run.spec.timeout_s):
                if run._proc is not None:
                    await self._read(run, run._proc)
                else:
                    await self._http(run)
        except TimeoutError:
            run.status = "timeout"
            self._kill(run, signal.SIGKILL)
            if run._proc is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(run._proc.wait(), 5)
        except asyncio.CancelledError:
            run.status = "cancelled"
            self._kill(run, signal.SIGKILL)
        except Exception as e:  # an HTTP error, a broken pipe: the job failed
            run.status = "failed"
            run.add_line(f"error: {type(e).__name__}: {str(e)[:200]}")
        finally:
            run.ended_mono = time.monotonic()
            if run.status == "running" or run.cancel_requested:
                run.status = (
                    "cancelled"
                    if run.cancel_requested
                    else ("succeeded" if run.exit_code == 0 else "failed")
                )
            publisher.cancel()
            try:
                await self._finish(run)
            finally:
                run.done.set()

    async def _read(self, run: JobRun, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            run.add_line(raw.decode("utf-8", "replace"))
        run.exit_code = await proc.wait()

    async def _http(self, run: JobRun) -> None:
        import httpx

        http = run.spec.http
        assert http is not None
        values = _values(run.params, job_id=run.id, data_dir=self.data_dir)
        url = fill(http.url, values, quote_values=True)
        headers = {k: fill(v, values) for k, v in http.headers.items()}
        body = fill_json(http.json_body, values) if http.json_body is not None else None
        run.add_line(f"{http.method} {url.split('?')[0]}")
        async with httpx.AsyncClient(timeout=run.spec.timeout_s) as client:
            resp = await client.request(http.method, url, json=body, headers=headers)
        for line in resp.text.splitlines()[-20:]:
            run.add_line(line)
        run.add_line(f"HTTP {resp.status_code}")
        run.exit_code = 0 if resp.is_success else resp.status_code

    async def _publish_loop(self, run: JobRun) -> None:
        sent: tuple[int, float | None] = (-1, None)
        while True:
            key = (run.line_count, run.percent)
            if key != sent:
                sent = key
                await self._progress(run)
            await asyncio.sleep(self.progress_interval_s)

    async def _progress(self, run: JobRun) -> None:
        if self.on_progress is None:
            return
        try:
            await self.on_progress(run)
        except Exception as e:  # the page is a view: never break the job for it
            logger.debug("job progress not published: %s", e)

    async def _finish(self, run: JobRun) -> None:
        logger.info(
            "job ended",
            extra={
                "job": run.id,
                "job_name": run.name,
                "status": run.status,
                "exit_code": run.exit_code,
                "s": round(run.elapsed_s, 1),
            },
        )
        await self._progress(run)
        if self.records is not None:
            try:
                await asyncio.to_thread(
                    self.records.ended,
                    run.id,
                    status=run.status,
                    exit_code=run.exit_code,
                    output=run.output(),
                    duration_ms=round(run.elapsed_s * 1000),
                )
            except Exception as e:
                logger.warning("job end not recorded: %s", e, extra={"job": run.id})
        if self.on_finished is not None and not run.cancel_requested:
            self.on_finished(run)


def jobs_from_json(raw: str) -> list[JobSpec]:
    """KAIWA_JOBS: a JSON list of JobSpec objects."""
    data = json.loads(raw)
    if not isinstance(data, list):
        raise ValueError("KAIWA_JOBS must be a JSON list of jobs")
    return [JobSpec.model_validate(item) for item in data]

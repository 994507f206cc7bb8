"""Background-job tools (staff only): start_job, job_status, cancel_job; progress to the page;
the result to the model once.

- `start_job(name, parameters)` is NON_BLOCKING with its answer scheduled WHEN_IDLE: it
  validates against the allow-list (agent/jobs.py), starts the process and answers at once
  with the job id, so the conversation goes on while the job runs.
- `job_status(job_id)` ("how is it going?") and `cancel_job(job_id)` ("cancel it": the
  job's process group is killed).
- Progress: every change of a running job (new output lines, percent, the end) goes to the
  call's page as JSON on the LiveKit text stream topic `kaiwa.jobs` (JOBS_TOPIC), at most
  every 0.3 s per job. The page may cancel a job with the RPC `kaiwa.jobs.cancel`.
- The end: the result goes to the model exactly once, as a `generate_reply` with the
  result in its instructions, at a quiet moment (the agent listening, nobody speaking, no
  tool running), like WHEN_IDLE. A request lost to a Gemini reconnect (the plugin drops a
  queued turn when it swaps connections; the reply then fails) is sent again, up to 3
  times; a request that produced a reply is never sent again. The delivery is recorded in
  the desk (jobs.delivered_at). A job cancelled by the model or the page is not re-told.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any

from livekit import rtc
from livekit.agents import AgentSession, RunContext, ToolError, llm

from desk.jobs import JobRecords

from ..jobs import JobManager, JobRefused, JobRun, JobSpec
from .context import state
from .runtime import kaiwa_tool

if TYPE_CHECKING:
    from ..call import CallState
    from ..settings import Settings

logger = logging.getLogger("kaiwa.jobs")

JOBS_TOPIC = "kaiwa.jobs"
CANCEL_RPC = "kaiwa.jobs.cancel"
PROTOCOL_VERSION = 1
SETTLE_S = 0.3
DELIVERY_ATTEMPTS = 3
STAFF = ("staff",)


def manager(ctx: RunContext) -> JobManager:
    jobs = state(ctx).jobs
    if jobs is None:
        raise ToolError("Background jobs are not available in this call.")
    return jobs


def start_job_schema(specs: list[JobSpec]) -> dict[str, Any]:
    """start_job's declaration: the job names as an enum, every job's parameters listed."""
    props: dict[str, Any] = {}
    for spec in specs:
        for pname, schema in spec.properties.items():
            if pname not in props:
                props[pname] = {
                    "type": schema["type"],
                    "description": str(schema.get("description") or pname)[:200],
                }
    jobs = "\n".join(f"- {s.describe()}" for s in specs)
    parameters: dict[str, Any] = {
        "type": "object",
        "properties": {
            "name": {
                "type": "string",
                "enum": [s.name for s in specs],
                "description": "Which job to run.",
            },
            "parameters": {
                "type": "object",
                "description": "The job's parameters, by name (see the list of jobs).",
                "properties": props or {"none": {"type": "string"}},
            },
        },
        "required": ["name"],
    }
    return {
        "name": "start_job",
        "description": (
            "Start a background job from the allow-list and keep talking while it runs. "
            "Answers at once with a job_id; the result arrives by itself later (don't poll; "
            "use job_status only when the user asks how it is going, cancel_job when they "
            f"say to stop it). Jobs:\n{jobs}"
        )[:1500],
        "parameters": parameters,
    }


def build_job_tools(specs: list[JobSpec]) -> list[llm.Tool]:
    """The job tools for a staff call, or none when no job is configured."""
    if not specs:
        return []

    @kaiwa_tool(
        raw_schema=start_job_schema(specs),
        behavior="non_blocking",
        scheduling="when_idle",
        timeout_s=10,
        roles=STAFF,
    )
    async def start_job(raw_arguments: dict[str, object], ctx: RunContext) -> dict[str, Any]:
        args = raw_arguments or {}
        name = args.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ToolError("Say which job to start (name). Nothing was started.")
        try:
            run = await manager(ctx).start(name, args.get("parameters"), actor=state(ctx).actor)
        except JobRefused as e:
            raise ToolError(str(e)) from None
        return {
            "job_id": run.id,
            "name": run.name,
            "status": "running",
            "say": f"Job {run.id} ({run.name}) has started. Tell the user briefly; its result "
            "will come by itself when it ends, so carry on with the conversation.",
        }

    return [start_job, job_status, cancel_job]


@kaiwa_tool(timeout_s=5, roles=STAFF)
async def job_status(ctx: RunContext, job_id: str | None = None) -> dict[str, Any]:
    """How a background job is going: its status, percent and latest output. Without a
    job_id, every job of this call.

    Args:
        job_id: The job id start_job returned, e.g. J-1A2B3C.
    """
    jobs = manager(ctx)
    if job_id:
        try:
            return jobs.get(job_id).status_for_model()
        except JobRefused as e:
            raise ToolError(str(e)) from None
    if not jobs.runs:
        return {"jobs": [], "say": "No job has been started in this call."}
    return {"jobs": [r.status_for_model() for r in jobs.runs.values()]}


@kaiwa_tool(timeout_s=10, roles=STAFF)
async def cancel_job(ctx: RunContext, job_id: str | None = None) -> dict[str, Any]:
    """Stop a running background job (its process is killed). Without a job_id, the only
    running job.

    Args:
        job_id: The job id start_job returned, e.g. J-1A2B3C.
    """
    jobs = manager(ctx)
    try:
        if not job_id:
            running = jobs.running()
            if len(running) != 1:
                ids = ", ".join(r.id for r in running) or "none"
                raise JobRefused(f"Which job? Running now: {ids}.")
            job_id = running[0].id
        run = await jobs.cancel(job_id)
    except JobRefused as e:
        raise ToolError(str(e)) from None
    return {
        "job_id": run.id,
        "name": run.name,
        "status": run.status,
        "say": f"Job {run.id} ({run.name}) was cancelled.",
    }


# ------------------------------------------------------------------ per call: page + model


class JobBridge:
    """One call's jobs ↔ its page (progress) and its model (the result, once)."""

    def __init__(
        self,
        room: rtc.Room,
        session: AgentSession[Any],
        call: CallState,
        page_identity: str,
        jobs: JobManager,
    ) -> None:
        self.room = room
        self.session = session
        self.call = call
        self.page_identity = page_identity
        self.jobs = jobs
        self._queue: asyncio.Queue[JobRun] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.delivered: list[str] = []

    async def publish(self, run: JobRun) -> None:
        body = json.dumps({"v": PROTOCOL_VERSION, "job": run.snapshot()}, ensure_ascii=False)
        await self.room.local_participant.send_text(
            body, topic=JOBS_TOPIC, destination_identities=[self.page_identity]
        )

    async def on_cancel_rpc(self, data: rtc.RpcInvocationData) -> str:
        if data.caller_identity != self.page_identity:
            raise rtc.RpcError(2400, "only the call's own page may cancel its jobs")
        try:
            job_id = str(json.loads(data.payload or "{}")["job_id"])
            run = await self.jobs.cancel(job_id)
        except (ValueError, KeyError, TypeError):
            raise rtc.RpcError(2400, 'expected {"job_id": "J-..."}') from None
        except JobRefused as e:
            return json.dumps({"ok": False, "message": str(e)})
        return json.dumps({"ok": True, "status": run.status})

    # -- the result, once

    def finished(self, run: JobRun) -> None:
        self._queue.put_nowait(run)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._deliver_all())

    async def _deliver_all(self) -> None:
        while not self._queue.empty():
            run = self._queue.get_nowait()
            try:
                await self._deliver(run)
            except Exception:
                logger.exception("job result not delivered", extra={"job": run.id})

    def _quiet(self) -> bool:
        return (
            self.session.agent_state in ("listening", "idle")
            and self.session.user_state != "speaking"
            and not self.call.running
        )

    async def _wait_quiet(self) -> None:
        while True:
            if self._quiet():
                await asyncio.sleep(SETTLE_S)
                if self._quiet():
                    return
            await asyncio.sleep(0.1)

    async def _deliver(self, run: JobRun) -> None:
        text = run.result_instructions()
        for attempt in range(1, DELIVERY_ATTEMPTS + 1):
            await self._wait_quiet()
            if run.delivered:
                return
            handle = self.session.generate_reply(instructions=text)
            await handle
            error = handle.exception()
            if error is None and (handle.chat_items or not handle.interrupted):
                run.delivered = True
                self.delivered.append(run.id)
                logger.info("job result delivered", extra={"job": run.id, "attempt": attempt})
                if self.jobs.records is not None:
                    try:
                        await asyncio.to_thread(self.jobs.records.delivered, run.id)
                    except Exception as e:
                        logger.warning("job delivery not recorded: %s", e)
                return
            logger.warning(
                "job result not taken (%s); trying again",
                type(error).__name__ if error else "interrupted before the reply",
                extra={"job": run.id, "attempt": attempt},
            )
            await asyncio.sleep(1.0)
        logger.error("job result could not be delivered", extra={"job": run.id})


async def attach(
    room: rtc.Room,
    session: AgentSession[Any],
    call: CallState,
    page_identity: str,
    settings: Settings,
) -> JobBridge | None:
    """Give a staff call its JobManager (CallState.jobs), the page feed and the delivery."""
    specs = settings.allowed_jobs()
    if not call.access.staff or not specs:
        return None
    jobs = JobManager(
        specs,
        data_dir=settings.jobs_dir,
        scope=call.scope,
        records=JobRecords(call.services.desk.store),
        max_running=settings.jobs_max_running,
        desk_db=settings.desk_db,
    )
    call.jobs = jobs
    bridge = JobBridge(room, session, call, page_identity, jobs)
    jobs.on_progress = bridge.publish
    jobs.on_finished = bridge.finished
    room.local_participant.register_rpc_method(CANCEL_RPC, bridge.on_cancel_rpc)
    return bridge

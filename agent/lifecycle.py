"""Call and worker lifecycle: caller drops and rejoins, crashed job processes, lost
livekit-server connections. What each does and how long it takes: docs/reliability.md.

Job process side (`CallLifecycle`, `wait_for_caller`, `recovery_from_metadata`):

* The caller hangs up (disconnect reason CLIENT_INITIATED / ROOM_DELETED / USER_REJECTED):
  RoomIO closes the AgentSession (`close_on_disconnect`), but the framework leaves the agent
  in the room until livekit-server closes it. We end the job at once, so the agent leaves.
* The caller's connection dies (any other reason): RoomIO keeps the session and re-links to
  a participant with the same identity when one joins. We give the caller
  `KAIWA_REJOIN_GRACE_S` to come back: on rejoin, the same AgentSession (and Gemini
  conversation) continues and the agent says it lost the caller for a moment; past the grace
  period the session ends and the agent leaves, so livekit-server can close the room
  (`departure_timeout`).

Worker (main process) side (`install_worker_recovery`):

* A job process that dies (SIGKILL, OOM, segfault) is not re-dispatched by livekit-server
  (v1.13.5, measured: no new agent within 40 s). The worker notices at once (its pipe to the
  process closes), removes the dead agent participant (it would linger ~20 s) and creates a
  new dispatch for the room, with metadata telling the new job it replaces a crashed one.
  The metadata is signed (agent/recovery_token.py): a job believes only kaiwa's own, recent
  recovery blocks for its own room; anything else is an ordinary new call.
* A whole worker that dies (with KAIWA_STATE_URL=redis://…): the other workers see its
  lease expire and one of them re-dispatches its calls (agent/cluster.py).
* Each crashed job is re-dispatched once: a Redis lock (SET NX PX) per room and crashed job
  when Redis is configured, and in any case no dispatch when the room already has a
  recovery dispatch for that job (LiveKit's dispatch API).
* A lost livekit-server connection: the framework reconnects by itself (`max_retry`); we
  report how long the worker was unregistered.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import random
import tempfile
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from livekit import api, rtc

from . import recovery_token
from .faults import record_recovery
from .session_store import HANDLE_TTL_S, redis_client, sweep_directory

if TYPE_CHECKING:
    from livekit.agents import AgentServer, AgentSession, JobContext
    from livekit.protocol.agent import Job

    from .cluster import CallRecord, ClusterState
    from .settings import Settings

logger = logging.getLogger("kaiwa.lifecycle")

# The reasons for which RoomIO closes the session itself: the caller meant to leave.
HANGUP_REASONS = frozenset(
    {
        rtc.DisconnectReason.CLIENT_INITIATED,
        rtc.DisconnectReason.ROOM_DELETED,
        rtc.DisconnectReason.USER_REJECTED,
    }
)
# Dispatch metadata key the worker sets when it re-dispatches a crashed job.
RECOVERY_KEY = "kaiwa_recovery"


def _reason_name(reason: int | None) -> str:
    try:
        return rtc.DisconnectReason.Name(reason or 0)  # type: ignore[arg-type]
    except ValueError:
        return str(reason)


# --------------------------------------------------------------------------- job process


# What a recovery block may say it is.
RECOVERY_KINDS = frozenset({"job_crash", "worker_lost"})


@dataclass(frozen=True)
class RecoveryInfo:
    """Why this job exists: it replaces a job whose process (or worker) died."""

    kind: str
    previous_job_id: str
    crashed_at: float  # time.time() when the worker saw the process die
    attempt: int
    # the first job of this conversation: tool-call idempotency keys stay the same across
    # replacements, which resume the same Gemini conversation (same call ids)
    scope: str = ""

    def to_metadata(self, *, room: str, secret: str) -> str:
        """The dispatch metadata for the replacement job, signed for `room`."""
        crashed_at = round(self.crashed_at, 3)
        scope = self.scope or self.previous_job_id
        signature = recovery_token.sign(
            secret,
            room=room,
            previous_job_id=self.previous_job_id,
            scope=scope,
            crashed_at=crashed_at,
            attempt=self.attempt,
            kind=self.kind,
        )
        return json.dumps(
            {
                RECOVERY_KEY: {
                    "kind": self.kind,
                    "previous_job_id": self.previous_job_id,
                    "crashed_at": crashed_at,
                    "attempt": self.attempt,
                    "scope": scope,
                    "sig": signature,
                }
            }
        )


def recovery_from_metadata(
    metadata: str | None,
    *,
    room: str,
    secret: str,
    max_age_s: float,
    now: float | None = None,
    job_id: str = "",
) -> RecoveryInfo | None:
    """The RecoveryInfo in a job's dispatch metadata, or None for an ordinary job.

    Only a block that kaiwa's worker signed for this very room, at most `max_age_s` ago,
    counts; any other recovery block is logged (one line, no secrets) and ignored."""
    if not metadata or RECOVERY_KEY not in metadata:
        return None
    try:
        data = json.loads(metadata)[RECOVERY_KEY]
        info = RecoveryInfo(
            kind=str(data["kind"]),
            previous_job_id=str(data["previous_job_id"]),
            crashed_at=float(data["crashed_at"]),
            attempt=int(data["attempt"]),
            scope=str(data["scope"]),
        )
        signature = data.get("sig")
    except (ValueError, KeyError, TypeError):
        # not JSON, or JSON that merely mentions the key somewhere else
        _not_recovery(room, job_id, "malformed recovery block")
        return None
    if not isinstance(signature, str) or not signature:
        _not_recovery(room, job_id, "unsigned")
        return None
    if info.kind not in RECOVERY_KINDS or not info.scope or info.attempt < 1:
        _not_recovery(room, job_id, "unknown kind or empty fields")
        return None
    why = recovery_token.check(
        secret,
        signature,
        room=room,
        previous_job_id=info.previous_job_id,
        scope=info.scope,
        crashed_at=info.crashed_at,
        attempt=info.attempt,
        kind=info.kind,
        now=time.time() if now is None else now,
        max_age_s=max_age_s,
    )
    if why is not None:
        _not_recovery(room, job_id, why)
        return None
    return info


def _not_recovery(room: str, job_id: str, why: str) -> None:
    logger.warning(
        "dispatch metadata claims a recovery but is not kaiwa's (%s); treating it as a new call",
        why,
        extra={"room": room, "job_id": job_id},
    )


def job_recovery(job: Job, settings: Settings) -> RecoveryInfo | None:
    """The verified RecoveryInfo of a job (its dispatch metadata, checked for its room)."""
    return recovery_from_metadata(
        job.metadata,
        room=job.room.name,
        secret=settings.livekit_api_secret.get_secret_value(),
        max_age_s=settings.recovery_max_age_s,
        job_id=job.id,
    )


def call_scope(job_id: str, recovery: RecoveryInfo | None) -> str:
    """The conversation a job belongs to: its own id, or (a verified replacement) the first
    crashed job's. The resumption handle and tool idempotency keys live under it."""
    return recovery.scope if recovery is not None else job_id


async def wait_for_caller(ctx: JobContext, timeout: float) -> rtc.RemoteParticipant | None:
    """The first caller in the room, or None if nobody comes within `timeout` (a re-dispatched
    job whose caller has already left must not sit in an empty room forever)."""
    try:
        return await asyncio.wait_for(ctx.wait_for_participant(), timeout)
    except TimeoutError:
        return None


class CallLifecycle:
    """Watches the linked caller of one AgentSession for hang-ups, drops and rejoins."""

    def __init__(
        self,
        ctx: JobContext,
        session: AgentSession,
        caller_identity: str,
        *,
        grace_s: float,
        rejoin_instructions: str | None,
    ) -> None:
        self._ctx = ctx
        self._session = session
        self._identity = caller_identity
        self._grace_s = grace_s
        self._rejoin_instructions = rejoin_instructions
        self._dropped_at: float | None = None
        self._drop_reason = ""
        self._grace_task: asyncio.Task[None] | None = None
        self._ending: asyncio.Task[None] | None = None
        self.rejoins = 0

    def start(self) -> None:
        room = self._ctx.room
        room.on("participant_disconnected", self._on_disconnected)
        room.on("participant_connected", self._on_connected)
        # the caller may already be gone by the time the session has started
        if self._identity not in room.remote_participants:
            self._dropped(rtc.DisconnectReason.UNKNOWN_REASON)

    # -- events --

    def _on_disconnected(self, participant: rtc.RemoteParticipant) -> None:
        if participant.identity != self._identity or self._ending is not None:
            return
        reason = participant.disconnect_reason
        if reason in HANGUP_REASONS:
            logger.info(
                "caller hung up; ending the session",
                extra={"participant": self._identity, "reason": _reason_name(reason)},
            )
            self._end(f"caller hung up ({_reason_name(reason)})")
            return
        self._dropped(reason)

    def _dropped(self, reason: int | None) -> None:
        if self._dropped_at is not None:
            return
        self._dropped_at = time.monotonic()
        self._drop_reason = _reason_name(reason)
        logger.info(
            "caller connection lost; waiting for a rejoin",
            extra={
                "participant": self._identity,
                "reason": self._drop_reason,
                "grace_s": self._grace_s,
            },
        )
        # What the agent says now would be lost: stop it, so the chat context keeps only
        # what the caller actually heard (the plugin truncates the interrupted turn).
        with contextlib.suppress(Exception):
            self._session.interrupt(force=True)
        self._grace_task = asyncio.create_task(self._grace())

    def _on_connected(self, participant: rtc.RemoteParticipant) -> None:
        if participant.identity != self._identity or self._dropped_at is None:
            return
        if self._ending is not None:
            return
        gap = time.monotonic() - self._dropped_at
        self._dropped_at = None
        if self._grace_task is not None:
            self._grace_task.cancel()
            self._grace_task = None
        self.rejoins += 1
        # RoomIO re-links to the same identity by itself; the AgentSession, its chat
        # context and the Gemini session are the same objects as before the drop.
        record_recovery(
            "participant_rejoin",
            gap,
            participant=self._identity,
            drop_reason=self._drop_reason,
            same_session=True,
            context_items=len(self._session.history.items),
            replayed="nothing (same session)",
            rejoin_count=self.rejoins,
        )
        if self._rejoin_instructions:
            self._session.generate_reply(instructions=self._rejoin_instructions)

    async def _grace(self) -> None:
        await asyncio.sleep(self._grace_s)
        logger.info(
            "caller did not come back within the grace period; ending the session",
            extra={"participant": self._identity, "grace_s": self._grace_s},
        )
        self._end(f"caller lost for {self._grace_s:g}s")

    # -- ending --

    def _end(self, reason: str) -> None:
        if self._ending is None:
            self._ending = asyncio.create_task(self._end_task(reason))

    async def _end_task(self, reason: str) -> None:
        if self._grace_task is not None and self._grace_task is not asyncio.current_task():
            self._grace_task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._session.aclose(), 10)
        # Leaving the room lets livekit-server close it (departure_timeout) instead of
        # keeping an agent alone in it until empty_timeout, or forever.
        self._ctx.shutdown(reason)


# --------------------------------------------------------------------------- worker process


class _ConnectionWatch(logging.Handler):
    """Notes when the worker lost its livekit-server connection (the framework only says so
    in a log line: "failed to connect to livekit, retrying ...")."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lost_at: float | None = None
        self.attempts = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("failed to connect to livekit"):
            if self.lost_at is None:
                self.lost_at = time.monotonic()
            self.attempts += 1


class WorkerRecovery:
    """Re-dispatches rooms whose job process (or, in a cluster, whose worker) died, once
    each; keeps the local handle directory swept; reports worker reconnects."""

    SWEEP_EVERY_S = 600.0

    def __init__(self, server: AgentServer, settings: Settings) -> None:
        self._server = server
        self._settings = settings
        self._redispatches: dict[str, list[float]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._watch = _ConnectionWatch()
        self._registered_once = False
        self._calls: dict[str, CallRecord] = {}  # job id → record (scope verified once)
        self.cluster: ClusterState | None = None

    def install(self) -> None:
        self._server.on("worker_started", self._on_worker_started)
        self._server.on("worker_registered", self._on_worker_registered)
        logging.getLogger("livekit.agents").addHandler(self._watch)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_worker_started(self) -> None:
        _use_multiprocess_metrics_here()
        url = self._settings.state_url
        if url is not None:
            from .cluster import ClusterState, worker_key

            self.cluster = ClusterState(
                redis_client(url.get_secret_value()), worker_key(), self._settings.worker_lease_s
            )
            self._spawn(self._cluster_loop(self.cluster))
        else:
            self._spawn(self._sweep_loop())
        # the process pool exists only once the server runs
        pool = getattr(self._server, "_proc_pool", None)
        if pool is None:
            logger.warning("no process pool to watch; crashed jobs will not be re-dispatched")
            return
        pool.on("process_closed", self._on_process_closed)

    def _on_worker_registered(self, worker_id: str, server_info: Any) -> None:
        if self._registered_once and self._watch.lost_at is not None:
            record_recovery(
                "worker_reconnect",
                time.monotonic() - self._watch.lost_at,
                worker_id=worker_id,
                attempts=self._watch.attempts,
                active_jobs=len(self._server.active_jobs),
                replayed="registration (jobs in rooms that survived are reported again)",
            )
        self._registered_once = True
        self._watch.lost_at = None
        self._watch.attempts = 0

    # -- local handle files: old ones go (the 2 h Gemini validity) --

    async def _sweep_loop(self) -> None:
        while True:
            try:
                n = await asyncio.to_thread(sweep_directory, self._settings.state_dir)
                if n:
                    logger.info("removed %d expired resumption handle files", n)
            except Exception:
                logger.exception("could not sweep the resumption handle directory")
            await asyncio.sleep(self.SWEEP_EVERY_S)

    # -- cluster: lease, call list, lost workers' calls --

    def _records(self) -> list[CallRecord]:
        from .cluster import CallRecord

        assert self.cluster is not None
        now = time.time()
        out = []
        for info in self._server.active_jobs:
            if info.fake_job:
                continue
            job = info.job
            rec = self._calls.get(job.id)
            if rec is None:
                recovery = job_recovery(job, self._settings)
                rec = CallRecord(
                    job_id=job.id,
                    room=job.room.name,
                    scope=call_scope(job.id, recovery),
                    agent_identity=info.accept_arguments.identity,
                    worker=self.cluster.worker,
                    attempt=recovery.attempt if recovery is not None else 0,
                    seen=now,
                )
            rec = dataclasses.replace(rec, seen=now)
            self._calls[job.id] = rec
            out.append(rec)
        live = {r.job_id for r in out}
        for job_id in list(self._calls):
            if job_id not in live:
                del self._calls[job_id]
        return out

    async def _cluster_loop(self, cluster: ClusterState) -> None:
        beat = cluster.lease_s / 3
        failing = False
        while True:
            try:
                await cluster.report(self._records())
                for rec in await cluster.orphans(max_age_s=HANDLE_TTL_S):
                    await self._adopt(cluster, rec)
                if failing:
                    logger.info("cluster state reachable again")
                failing = False
            except Exception as e:
                if not failing:  # one line per outage
                    logger.warning("cluster state (Redis) unreachable: %s", type(e).__name__)
                failing = True
            await asyncio.sleep(beat * random.uniform(0.8, 1.0))

    async def _adopt(self, cluster: ClusterState, rec: CallRecord) -> None:
        """A call of a worker whose lease ran out: re-dispatch it, if we win its lock."""
        if not self._settings.job_redispatch:
            await cluster.drop(rec.job_id)
            return
        if not await cluster.claim_redispatch(
            rec.room, rec.job_id, self._settings.recovery_max_age_s
        ):
            return  # another worker took it
        await cluster.drop(rec.job_id)
        logger.warning(
            "worker lost; re-dispatching its call",
            extra={"room": rec.room, "job_id": rec.job_id, "lost_worker": rec.worker},
        )
        self._spawn(
            self._redispatch(
                rec.room,
                rec.job_id,
                rec.agent_identity,
                rec.seen,
                scope=rec.scope,
                attempt=rec.attempt + 1,
                kind="worker_lost",
                locked=True,
            )
        )

    # -- this worker's own job processes --

    def _on_process_closed(self, proc: Any) -> None:
        info = proc.running_job
        exitcode = proc.exitcode
        if info is None or exitcode in (0, None):
            return
        if self._server.draining or getattr(self._server, "_closed", False):
            # the worker is stopping its processes itself (exit 255 when it closes them)
            return
        job = info.job
        crashed_at = time.time()
        logger.warning(
            "job process died",
            extra={
                "job_id": job.id,
                "room": job.room.name,
                "exitcode": exitcode,
                "redispatch": self._settings.job_redispatch,
            },
        )
        self._calls.pop(job.id, None)
        if not self._settings.job_redispatch:
            return
        recovery = job_recovery(job, self._settings)
        self._spawn(
            self._redispatch(
                job.room.name,
                job.id,
                info.accept_arguments.identity,
                crashed_at,
                scope=call_scope(job.id, recovery),
                attempt=(recovery.attempt + 1) if recovery is not None else 1,
                kind="job_crash",
            )
        )

    async def _redispatch(
        self,
        room: str,
        job_id: str,
        agent_identity: str,
        crashed_at: float,
        *,
        scope: str,
        attempt: int,
        kind: str,
        locked: bool = False,
    ) -> None:
        now = time.monotonic()
        window = 300.0
        recent = [t for t in self._redispatches.get(room, []) if now - t < window]
        if len(recent) >= self._settings.job_redispatch_max:
            logger.error(
                "job keeps crashing; not re-dispatching again",
                extra={"room": room, "redispatches": len(recent), "window_s": window},
            )
            return
        s = self._settings
        try:
            if self.cluster is not None and not locked:
                # one re-dispatch per crashed job, whichever worker saw it die
                if not await self.cluster.claim_redispatch(room, job_id, s.recovery_max_age_s):
                    logger.info(
                        "another worker re-dispatches this room",
                        extra={"room": room, "previous_job_id": job_id},
                    )
                    return
                with contextlib.suppress(Exception):
                    await self.cluster.drop(job_id)
            recent.append(now)
            self._redispatches[room] = recent
            async with api.LiveKitAPI(
                s.livekit_url, s.livekit_api_key, s.livekit_api_secret.get_secret_value()
            ) as lk:
                listed = await lk.room.list_participants(api.ListParticipantsRequest(room=room))
                callers = [
                    p
                    for p in listed.participants
                    if p.kind != api.ParticipantInfo.Kind.AGENT and p.identity != agent_identity
                ]
                if not callers:
                    logger.info(
                        "no caller left in the room; not re-dispatching", extra={"room": room}
                    )
                    return
                # Without Redis, LiveKit's dispatch list is the check: this crash already
                # has its replacement dispatch (with Redis, the lock above decided).
                if await _already_redispatched(lk, room, job_id):
                    logger.info(
                        "the room already has a replacement dispatch",
                        extra={"room": room, "previous_job_id": job_id},
                    )
                    return
                # The dead agent's participant lingers until its connection times out
                # (~20 s); remove it so the caller doesn't see two agents.
                with contextlib.suppress(api.TwirpError):
                    await lk.room.remove_participant(
                        api.RoomParticipantIdentity(room=room, identity=agent_identity)
                    )
                info = RecoveryInfo(kind, job_id, crashed_at, attempt, scope)
                metadata = info.to_metadata(
                    room=room, secret=s.livekit_api_secret.get_secret_value()
                )
                dispatch = await lk.agent_dispatch.create_dispatch(
                    api.CreateAgentDispatchRequest(
                        agent_name=s.agent_name, room=room, metadata=metadata
                    )
                )
            logger.info(
                "re-dispatched the room of a crashed job",
                extra={
                    "room": room,
                    "previous_job_id": job_id,
                    "dispatch_id": dispatch.id,
                    "kind": kind,
                    "attempt": attempt,
                },
            )
        except Exception:
            logger.exception("could not re-dispatch the room", extra={"room": room})


async def _already_redispatched(lk: api.LiveKitAPI, room: str, job_id: str) -> bool:
    """Whether the room has a dispatch that replaces `job_id` (metadata not verified: this
    only avoids a duplicate; the job itself checks the signature)."""
    for d in await lk.agent_dispatch.list_dispatch(room_name=room):
        try:
            block = json.loads(d.metadata or "{}").get(RECOVERY_KEY) or {}
        except (ValueError, AttributeError):
            continue
        if isinstance(block, dict) and block.get("previous_job_id") == job_id:
            return True
    return False


def metrics_options(settings: Settings) -> dict[str, Any]:
    """AgentServer options that expose /metrics on KAIWA_METRICS_PORT (nothing when unset).

    Job processes record their metrics in a multiprocess directory that the worker's
    endpoint aggregates (prometheus_client multiprocess mode)."""
    if settings.metrics_port is None:
        return {}
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(
        prefix="kaiwa-metrics-"
    )
    return {"prometheus_port": settings.metrics_port, "prometheus_multiproc_dir": directory}


def _use_multiprocess_metrics_here() -> None:
    """The worker process imported prometheus_client before AgentServer.run() set
    PROMETHEUS_MULTIPROC_DIR, so its metrics would stay in memory, where the aggregating
    /metrics endpoint never looks. Switch the value class for metrics created from now on
    (kaiwa's labelled children are created lazily, at their first use)."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    from prometheus_client import values

    values.ValueClass = values.get_value_class()


def install_worker_recovery(server: AgentServer, settings: Settings) -> WorkerRecovery:
    recovery = WorkerRecovery(server, settings)
    recovery.install()
    return recovery

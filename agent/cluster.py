"""What the workers of a cluster share in Redis (KAIWA_STATE_URL), besides the handles.

* A lease per worker, `kaiwa:worker:<id>` (PX = KAIWA_WORKER_LEASE_S), renewed every third
  of it, and the worker's running calls in the hash `kaiwa:calls` (job id → CallRecord).
  When a worker dies (kill -9, a lost host), its lease runs out while its calls stay
  listed: the other workers find them (`orphans()`) and one of them re-dispatches each
  room, so the caller continues with a new agent in the same Gemini conversation.
* A re-dispatch lock per room and crashed job, `kaiwa:redispatch:<sha256(room, job)>`
  (SET NX PX): whoever sees a job die (its own worker, or every surviving worker when a
  worker is lost) re-dispatches it only if it wins the lock, so a room never gets two
  replacement agents for one crash.

Everything here runs in the worker's main process, on its event loop, with the asyncio
client and short socket timeouts; nothing here touches a call's audio.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from .session_store import REDIS_PREFIX

logger = logging.getLogger("kaiwa.cluster")

CALLS_KEY = f"{REDIS_PREFIX}calls"


def worker_key() -> str:
    """This worker incarnation's name in the registry (host, pid, random)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class CallRecord:
    """A call as its worker last reported it."""

    job_id: str
    room: str
    scope: str
    agent_identity: str
    worker: str
    attempt: int  # 0 for a conversation's first job, else its recovery attempt
    seen: float  # time.time() of the worker's last report

    def dumps(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def loads(cls, raw: str | bytes) -> CallRecord | None:
        try:
            data = json.loads(raw)
            return cls(
                job_id=str(data["job_id"]),
                room=str(data["room"]),
                scope=str(data["scope"]),
                agent_identity=str(data["agent_identity"]),
                worker=str(data["worker"]),
                attempt=int(data["attempt"]),
                seen=float(data["seen"]),
            )
        except (ValueError, KeyError, TypeError):
            return None


def _text(v: str | bytes) -> str:
    return v.decode() if isinstance(v, bytes) else v


class ClusterState:
    """One worker's view of the cluster's shared state."""

    def __init__(self, client: Any, worker: str, lease_s: float) -> None:
        self._r = client
        self.worker = worker
        self.lease_s = lease_s
        self._reported: set[str] = set()

    @staticmethod
    def lock_key(room: str, job_id: str) -> str:
        digest = hashlib.sha256(f"{room}\0{job_id}".encode()).hexdigest()
        return f"{REDIS_PREFIX}redispatch:{digest}"

    async def claim_redispatch(self, room: str, job_id: str, ttl_s: float) -> bool:
        """True for exactly one caller per (room, crashed job) within `ttl_s`."""
        won = await self._r.set(
            self.lock_key(room, job_id), self.worker, nx=True, px=int(ttl_s * 1000)
        )
        return bool(won)

    async def report(self, calls: list[CallRecord]) -> None:
        """Renew this worker's lease and list its running calls (dropping ended ones)."""
        pipe = self._r.pipeline(transaction=True)
        pipe.set(f"{REDIS_PREFIX}worker:{self.worker}", "1", px=int(self.lease_s * 1000))
        if calls:
            pipe.hset(CALLS_KEY, mapping={c.job_id: c.dumps() for c in calls})
        ended = self._reported - {c.job_id for c in calls}
        if ended:
            pipe.hdel(CALLS_KEY, *ended)
        await pipe.execute()
        self._reported = {c.job_id for c in calls}

    async def drop(self, job_id: str) -> None:
        """A call is over (or being re-dispatched): no longer listed."""
        self._reported.discard(job_id)
        await self._r.hdel(CALLS_KEY, job_id)

    async def orphans(self, max_age_s: float) -> list[CallRecord]:
        """Calls listed by workers whose lease has run out (records older than `max_age_s`
        are dropped: nothing could resume them)."""
        raw = await self._r.hgetall(CALLS_KEY)
        now = time.time()
        records: list[CallRecord] = []
        junk: list[str] = []
        for field, value in raw.items():
            rec = CallRecord.loads(value)
            if rec is None or now - rec.seen > max_age_s:
                junk.append(_text(field))
            elif rec.worker != self.worker:
                records.append(rec)
        if junk:
            await self._r.hdel(CALLS_KEY, *junk)
        workers = sorted({r.worker for r in records})
        if not workers:
            return []
        pipe = self._r.pipeline(transaction=False)
        for w in workers:
            pipe.exists(f"{REDIS_PREFIX}worker:{w}")
        alive = {w for w, n in zip(workers, await pipe.execute(), strict=True) if n}
        return [r for r in records if r.worker not in alive]

    async def aclose(self) -> None:
        await self._r.aclose()

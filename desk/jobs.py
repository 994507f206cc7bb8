"""Background jobs on the record: who started which allow-listed job, with what, and how it ended.

One row per job in ``jobs`` (agent/jobs.py runs them): the job id (``J-...``), the call
scope that started it, the actor (``staff:alice``), the job's name and its validated
arguments (JSON), then on the end the exit status (``succeeded`` | ``failed`` |
``cancelled`` | ``timeout``), the exit code, the tail of its output and its duration;
``delivered_at`` is when its result went to the model (once).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from desk.db import Store, Tx
from desk.errors import DeskError

STATUSES = ("running", "succeeded", "failed", "cancelled", "timeout")
_MAX_OUTPUT = 8_000  # characters of output tail kept


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _at(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


@dataclass(frozen=True)
class JobRow:
    id: str
    scope: str
    actor: str
    name: str
    arguments: dict[str, Any]
    status: str
    started_at: dt.datetime
    ended_at: dt.datetime | None = None
    exit_code: int | None = None
    output: str = ""
    duration_ms: int | None = None
    pid: int | None = None
    delivered_at: dt.datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        for k in ("started_at", "ended_at", "delivered_at"):
            d[k] = d[k].isoformat() if d[k] else None
        return d


class JobNotFound(DeskError):
    def __init__(self, ref: str) -> None:
        super().__init__(f"There is no job {ref}.")


_COLUMNS = (
    "id, scope, actor, name, arguments, status, started_at, ended_at, exit_code, output, "
    "duration_ms, pid, delivered_at"
)


def _row(r: Any) -> JobRow:
    return JobRow(
        id=r["id"],
        scope=r["scope"],
        actor=r["actor"],
        name=r["name"],
        arguments=json.loads(r["arguments"] or "{}"),
        status=r["status"],
        started_at=_at(r["started_at"]) or _utcnow(),
        ended_at=_at(r["ended_at"]),
        exit_code=None if r["exit_code"] is None else int(r["exit_code"]),
        output=r["output"] or "",
        duration_ms=None if r["duration_ms"] is None else int(r["duration_ms"]),
        pid=None if r["pid"] is None else int(r["pid"]),
        delivered_at=_at(r["delivered_at"]),
    )


class JobRecords:
    """Reads and writes of job rows on a desk's Store (``JobRecords(desk.store)``)."""

    def __init__(self, store: Store, clock: Callable[[], dt.datetime] | None = None) -> None:
        self.store = store
        self.clock = clock or _utcnow

    def started(
        self,
        job_id: str,
        *,
        scope: str,
        actor: str,
        name: str,
        arguments: dict[str, Any],
        pid: int | None = None,
        started_at: dt.datetime | None = None,
    ) -> None:
        at = _iso(started_at or self.clock())
        args = json.dumps(arguments, ensure_ascii=False, sort_keys=True)

        def run(tx: Tx) -> None:
            tx.execute(
                f"INSERT INTO jobs ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, 'running', ?, NULL, "
                "NULL, '', NULL, ?, NULL)",
                (job_id, scope, actor, name, args, at, pid),
            )

        self.store.write(run)

    def ended(
        self,
        job_id: str,
        *,
        status: str,
        exit_code: int | None,
        output: str,
        duration_ms: int,
        ended_at: dt.datetime | None = None,
    ) -> None:
        if status not in STATUSES or status == "running":
            raise ValueError(f"not an end status: {status}")
        at = _iso(ended_at or self.clock())

        def run(tx: Tx) -> None:
            tx.execute(
                "UPDATE jobs SET status = ?, ended_at = ?, exit_code = ?, output = ?, "
                "duration_ms = ? WHERE id = ?",
                (status, at, exit_code, output[-_MAX_OUTPUT:], duration_ms, job_id),
            )

        self.store.write(run)

    def delivered(self, job_id: str) -> bool:
        """Mark the result as given to the model; False if it already was (deliver once)."""
        at = _iso(self.clock())

        def run(tx: Tx) -> bool:
            cur = tx.execute(
                "UPDATE jobs SET delivered_at = ? WHERE id = ? AND delivered_at IS NULL",
                (at, job_id),
            )
            return bool(cur.rowcount)

        return self.store.write(run)

    def get(self, job_id: str) -> JobRow:
        def run(tx: Tx) -> JobRow:
            r = tx.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if r is None:
                raise JobNotFound(job_id)
            return _row(r)

        return self.store.read(run)

    def list_jobs(self, *, scope: str | None = None, limit: int = 50) -> list[JobRow]:
        """Most recent first; with ``scope`` only that call's jobs."""
        limit = max(1, min(int(limit), 500))

        def run(tx: Tx) -> list[JobRow]:
            if scope is not None:
                rows = tx.execute(
                    f"SELECT {_COLUMNS} FROM jobs WHERE scope = ? "
                    "ORDER BY started_at DESC, id DESC LIMIT ?",
                    (scope, limit),
                ).fetchall()
            else:
                rows = tx.execute(
                    f"SELECT {_COLUMNS} FROM jobs ORDER BY started_at DESC, id DESC LIMIT ?",
                    (limit,),
                ).fetchall()
            return [_row(r) for r in rows]

        return self.store.read(run)

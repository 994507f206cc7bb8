"""Call records: every call on the record (transcript, tool calls, recoveries, usage, cost).

One row per call in ``calls``, keyed by its **scope** (the conversation id the worker
uses: ``room:first-job-id``), so a replacement job for a crashed one appends to the same
row. Below it, append-only rows:

- ``call_segments``: the final transcript, both sides (``caller`` / ``agent``), with the
  time each was said and ``interrupted`` for an agent turn that was cut off;
- ``call_tools``: each tool call with its function-call id, name, redacted arguments,
  outcome (``ok``, ``error`` + the sentence, ``timeout``, ``cancelled``), duration and the
  case it touched;
- ``call_recoveries``: each recovery (kind, duration, a few details);
- ``call_turns``: the latency of each answered caller turn (end of the caller's speech to
  the agent's first audio, tool time apart); the call's p50/p95 are recomputed from them.

Token usage (by modality, cached) and the estimated cost are running sums on the call row.

The worker (agent/recorder.py) sends ``CallBatch`` es, each written in one transaction, so
a killed worker loses at most its last unsent batch. Retention (``purge_transcripts``)
deletes transcript segments and tool arguments of calls older than N days and keeps the
call row with its aggregates (counts, tokens, cost, latency) and the tool outcomes.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from desk.db import Store, Tx
from desk.errors import DeskError

OUTCOMES = ("ok", "error", "timeout", "cancelled")
_MAX_TEXT = 20_000  # one transcript segment or argument blob, characters


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(at: dt.datetime) -> str:
    # fixed width (microseconds, UTC) so stored text sorts by time, as desk.service does
    return at.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _at(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


# ----------------------------------------------------------------- what is written


@dataclass(frozen=True)
class Usage:
    """Gemini tokens, summed (input by modality, cached, output by modality)."""

    input_audio: int = 0
    input_text: int = 0
    input_image: int = 0
    input_cached: int = 0
    output_audio: int = 0
    output_text: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(*(getattr(self, f) + getattr(other, f) for f in self.__dataclass_fields__))

    @property
    def input_total(self) -> int:
        return self.input_audio + self.input_text + self.input_image

    @property
    def output_total(self) -> int:
        return self.output_audio + self.output_text

    def __bool__(self) -> bool:
        return any(getattr(self, f) for f in self.__dataclass_fields__)


@dataclass(frozen=True)
class Segment:
    at: dt.datetime
    speaker: str  # "caller" | "agent"
    text: str
    interrupted: bool = False
    # the chat item it came from: a later, fuller final transcript of the same item (real
    # Gemini sends the caller's words late and in pieces) replaces the text in place
    item_id: str | None = None


@dataclass(frozen=True)
class ToolRecord:
    at: dt.datetime  # when the call arrived
    call_key: str  # the function-call id
    name: str
    arguments: str  # JSON, already redacted by the caller of this API
    outcome: str  # OUTCOMES
    duration_ms: int
    error: str | None = None  # the sentence the model got, for error / timeout
    case_id: str | None = None  # R-1042


@dataclass(frozen=True)
class RecoveryRecord:
    at: dt.datetime
    kind: str
    duration_s: float
    detail: str = ""  # JSON of a few values (no personal data)


@dataclass(frozen=True)
class TurnRecord:
    at: dt.datetime  # the caller's end of speech
    latency_ms: int  # to the agent's first audio, tool time not included
    tool_ms: int = 0


@dataclass
class CallBatch:
    """What one flush writes. Only ``scope``, ``room`` and ``job_id`` are required."""

    scope: str
    room: str
    job_id: str
    started_at: dt.datetime | None = None  # the first batch of a job
    role: str | None = None
    identity: str | None = None
    channel: str | None = None
    model: str | None = None
    currency: str | None = None
    segments: list[Segment] = field(default_factory=list)
    tools: list[ToolRecord] = field(default_factory=list)
    recoveries: list[RecoveryRecord] = field(default_factory=list)
    turns: list[TurnRecord] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    cost: float = 0.0
    ended_at: dt.datetime | None = None
    end_reason: str | None = None

    def empty(self) -> bool:
        return not (
            self.started_at
            or self.segments
            or self.tools
            or self.recoveries
            or self.turns
            or self.usage
            or self.cost
            or self.ended_at
        )


# ----------------------------------------------------------------- what is read


@dataclass(frozen=True)
class CallSummary:
    id: int
    scope: str
    room: str
    jobs: list[str]
    started_at: dt.datetime
    ended_at: dt.datetime | None
    end_reason: str | None
    role: str | None
    identity: str | None
    channel: str | None
    model: str | None
    usage: Usage
    cost: float
    currency: str | None
    segments: int
    tool_calls: int
    recoveries: int
    turns: int
    latency_p50_ms: int | None
    latency_p95_ms: int | None
    purged_at: dt.datetime | None

    @property
    def duration_s(self) -> float | None:
        if self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["usage"] = {k: getattr(self.usage, k) for k in self.usage.__dataclass_fields__}
        for k in ("started_at", "ended_at", "purged_at"):
            d[k] = d[k].isoformat() if d[k] else None
        return d


@dataclass(frozen=True)
class CallDetail:
    call: CallSummary
    segments: list[Segment]
    tools: list[ToolRecord]
    recoveries: list[RecoveryRecord]
    turns: list[TurnRecord]

    def timeline(self) -> list[Segment | ToolRecord | RecoveryRecord]:
        """Transcript with tool calls and recoveries inline, in time order."""
        items: list[Segment | ToolRecord | RecoveryRecord] = [
            *self.segments,
            *self.tools,
            *self.recoveries,
        ]
        return sorted(items, key=lambda i: i.at)


class CallNotFound(DeskError):
    def __init__(self, ref: str) -> None:
        super().__init__(f"There is no call record {ref}.")


# ----------------------------------------------------------------- the store


_CALL_COLUMNS = (
    "id, scope, room, jobs, started_at, ended_at, end_reason, role, identity, channel, "
    "model, in_audio_tokens, in_text_tokens, in_image_tokens, in_cached_tokens, "
    "out_audio_tokens, out_text_tokens, cost, currency, segments, tool_calls, recoveries, "
    "turns, latency_p50_ms, latency_p95_ms, purged_at"
)


def _summary(row: Any) -> CallSummary:
    return CallSummary(
        id=int(row["id"]),
        scope=row["scope"],
        room=row["room"],
        jobs=json.loads(row["jobs"] or "[]"),
        started_at=_at(row["started_at"]) or _utcnow(),
        ended_at=_at(row["ended_at"]),
        end_reason=row["end_reason"],
        role=row["role"],
        identity=row["identity"],
        channel=row["channel"],
        model=row["model"],
        usage=Usage(
            input_audio=int(row["in_audio_tokens"]),
            input_text=int(row["in_text_tokens"]),
            input_image=int(row["in_image_tokens"]),
            input_cached=int(row["in_cached_tokens"]),
            output_audio=int(row["out_audio_tokens"]),
            output_text=int(row["out_text_tokens"]),
        ),
        cost=float(row["cost"]),
        currency=row["currency"],
        segments=int(row["segments"]),
        tool_calls=int(row["tool_calls"]),
        recoveries=int(row["recoveries"]),
        turns=int(row["turns"]),
        latency_p50_ms=None if row["latency_p50_ms"] is None else int(row["latency_p50_ms"]),
        latency_p95_ms=None if row["latency_p95_ms"] is None else int(row["latency_p95_ms"]),
        purged_at=_at(row["purged_at"]),
    )


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def parse_call_ref(ref: str | int) -> int:
    text = str(ref).strip().upper().removeprefix("C-")
    if not text.isdigit():
        raise CallNotFound(str(ref))
    return int(text)


class CallRecords:
    """Reads and writes of call records on a desk's Store (``Desk.calls``)."""

    def __init__(self, store: Store, clock: Callable[[], dt.datetime] | None = None) -> None:
        self.store = store
        self.clock = clock or _utcnow

    # ------------------------------------------------------------- writes

    def write(self, batch: CallBatch) -> int:
        """Append one batch to its call (creating the row); returns the call's id."""
        return self.store.write(lambda tx: _write(tx, batch, _iso(self.clock())))

    def purge_transcripts(self, older_than_days: float) -> int:
        """Delete transcript segments and tool arguments of calls that started more than
        ``older_than_days`` ago; the call rows and their aggregates stay. Returns how many
        calls were purged."""
        if older_than_days < 0:
            raise ValueError("older_than_days must be >= 0")
        cutoff = _iso(self.clock() - dt.timedelta(days=older_than_days))
        now = _iso(self.clock())

        def run(tx: Tx) -> int:
            ids = [
                int(r[0])
                for r in tx.execute(
                    "SELECT id FROM calls WHERE started_at < ? AND purged_at IS NULL",
                    (cutoff,),
                ).fetchall()
            ]
            for call_id in ids:
                tx.execute("DELETE FROM call_segments WHERE call_id = ?", (call_id,))
                tx.execute("UPDATE call_tools SET arguments = NULL WHERE call_id = ?", (call_id,))
                tx.execute("UPDATE calls SET purged_at = ? WHERE id = ?", (now, call_id))
            return len(ids)

        return self.store.write(run)

    # -------------------------------------------------------------- reads

    def list_calls(self, *, limit: int = 50, case_id: str | None = None) -> list[CallSummary]:
        """Most recent first; with ``case_id`` only the calls whose tools touched it."""
        limit = max(1, min(int(limit), 500))

        def run(tx: Tx) -> list[CallSummary]:
            if case_id:
                rows = tx.execute(
                    f"SELECT {_CALL_COLUMNS} FROM calls WHERE id IN "
                    "(SELECT call_id FROM call_tools WHERE case_id = ?) "
                    "ORDER BY started_at DESC, id DESC LIMIT ?",
                    (case_id.strip().upper(), limit),
                ).fetchall()
            else:
                rows = tx.execute(
                    f"SELECT {_CALL_COLUMNS} FROM calls ORDER BY started_at DESC, id DESC LIMIT ?",
                    (limit,),
                ).fetchall()
            return [_summary(r) for r in rows]

        return self.store.read(run)

    def get_call(self, ref: str | int) -> CallDetail:
        """One call by its number (``12`` or ``C-12``) or its scope."""

        def run(tx: Tx) -> CallDetail:
            text = str(ref).strip()
            row = tx.execute(f"SELECT {_CALL_COLUMNS} FROM calls WHERE scope = ?", (text,))
            found = row.fetchone()
            if found is None:
                num = parse_call_ref(text)
                found = tx.execute(
                    f"SELECT {_CALL_COLUMNS} FROM calls WHERE id = ?", (num,)
                ).fetchone()
            if found is None:
                raise CallNotFound(text)
            call = _summary(found)
            segments = [
                Segment(_at(r["at"]) or call.started_at, r["speaker"], r["text"],
                        bool(r["interrupted"]))
                for r in tx.execute(
                    "SELECT at, speaker, text, interrupted FROM call_segments "
                    "WHERE call_id = ? ORDER BY at, id",
                    (call.id,),
                ).fetchall()
            ]  # fmt: skip
            tools = [
                ToolRecord(
                    at=_at(r["at"]) or call.started_at,
                    call_key=r["call_key"],
                    name=r["name"],
                    arguments=r["arguments"] if r["arguments"] is not None else "",
                    outcome=r["outcome"],
                    duration_ms=int(r["duration_ms"]),
                    error=r["error"],
                    case_id=r["case_id"],
                )
                for r in tx.execute(
                    "SELECT at, call_key, name, arguments, outcome, duration_ms, error, "
                    "case_id FROM call_tools WHERE call_id = ? ORDER BY at, id",
                    (call.id,),
                ).fetchall()
            ]
            recoveries = [
                RecoveryRecord(_at(r["at"]) or call.started_at, r["kind"],
                               float(r["duration_s"]), r["detail"] or "")
                for r in tx.execute(
                    "SELECT at, kind, duration_s, detail FROM call_recoveries "
                    "WHERE call_id = ? ORDER BY at, id",
                    (call.id,),
                ).fetchall()
            ]  # fmt: skip
            turns = [
                TurnRecord(_at(r["at"]) or call.started_at, int(r["latency_ms"]),
                           int(r["tool_ms"]))
                for r in tx.execute(
                    "SELECT at, latency_ms, tool_ms FROM call_turns WHERE call_id = ? "
                    "ORDER BY at, id",
                    (call.id,),
                ).fetchall()
            ]  # fmt: skip
            return CallDetail(call, segments, tools, recoveries, turns)

        return self.store.read(run)


def _write(tx: Tx, b: CallBatch, now: str) -> int:
    started = _iso(b.started_at) if b.started_at else now
    tx.execute(
        "INSERT INTO calls (scope, room, jobs, started_at) VALUES (?, ?, '[]', ?) "
        "ON CONFLICT (scope) DO NOTHING",
        (b.scope, b.room, started),
    )
    row = tx.execute(
        "SELECT id, jobs FROM calls WHERE scope = ?{for_update}", (b.scope,)
    ).fetchone()
    call_id = int(row["id"])
    jobs = json.loads(row["jobs"] or "[]")
    sets: list[str] = []
    params: list[object] = []
    if b.job_id and b.job_id not in jobs:
        sets.append("jobs = ?")
        params.append(json.dumps([*jobs, b.job_id]))
        if jobs and b.ended_at is None:  # a replacement job: the call goes on
            sets += ["ended_at = NULL", "end_reason = NULL"]
    for column, value in (
        ("role", b.role),
        ("identity", b.identity),
        ("channel", b.channel),
        ("model", b.model),
        ("currency", b.currency),
    ):
        if value is not None:
            sets.append(f"{column} = ?")
            params.append(value)
    u = b.usage
    for column, delta in (
        ("in_audio_tokens", u.input_audio),
        ("in_text_tokens", u.input_text),
        ("in_image_tokens", u.input_image),
        ("in_cached_tokens", u.input_cached),
        ("out_audio_tokens", u.output_audio),
        ("out_text_tokens", u.output_text),
        ("tool_calls", len(b.tools)),
        ("recoveries", len(b.recoveries)),
        ("turns", len(b.turns)),
    ):
        if delta:
            sets.append(f"{column} = {column} + ?")
            params.append(int(delta))
    if b.cost:
        sets.append("cost = cost + ?")
        params.append(float(b.cost))
    if b.ended_at is not None:
        sets += ["ended_at = ?", "end_reason = ?"]
        params += [_iso(b.ended_at), b.end_reason or "ended"]
    added = 0
    for s in b.segments:
        text = s.text[:_MAX_TEXT]
        if (
            s.item_id
            and tx.execute(
                "UPDATE call_segments SET text = ?, interrupted = ?"
                " WHERE call_id = ? AND item_id = ?",
                (text, int(s.interrupted), call_id, s.item_id),
            ).rowcount
        ):
            continue
        tx.execute(
            "INSERT INTO call_segments (call_id, job_id, item_id, at, speaker, text, interrupted) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (call_id, b.job_id, s.item_id, _iso(s.at), s.speaker, text, int(s.interrupted)),
        )
        added += 1
    if added:
        sets.append("segments = segments + ?")
        params.append(added)
    for t in b.tools:
        if t.outcome not in OUTCOMES:
            raise ValueError(f"unknown tool outcome {t.outcome!r}")
        tx.execute(
            "INSERT INTO call_tools (call_id, job_id, at, call_key, name, arguments, outcome, "
            "duration_ms, error, case_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (call_id, b.job_id, _iso(t.at), t.call_key, t.name, t.arguments[:_MAX_TEXT],
             t.outcome, int(t.duration_ms), t.error, t.case_id),
        )  # fmt: skip
    for r in b.recoveries:
        tx.execute(
            "INSERT INTO call_recoveries (call_id, job_id, at, kind, duration_s, detail) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (call_id, b.job_id, _iso(r.at), r.kind, float(r.duration_s), r.detail),
        )
    for turn in b.turns:
        tx.execute(
            "INSERT INTO call_turns (call_id, job_id, at, latency_ms, tool_ms) "
            "VALUES (?, ?, ?, ?, ?)",
            (call_id, b.job_id, _iso(turn.at), int(turn.latency_ms), int(turn.tool_ms)),
        )
    if b.turns:  # p50/p95 over every turn of the call, across jobs
        latencies = [
            float(r[0])
            for r in tx.execute(
                "SELECT latency_ms FROM call_turns WHERE call_id = ?", (call_id,)
            ).fetchall()
        ]
        sets += ["latency_p50_ms = ?", "latency_p95_ms = ?"]
        params += [round(percentile(latencies, 50) or 0), round(percentile(latencies, 95) or 0)]
    if sets:
        tx.execute(f"UPDATE calls SET {', '.join(sets)} WHERE id = ?", (*params, call_id))
    return call_id

"""Every call on the record: the call's recorder, fed by AgentSession's public events.

`CallRecorder` (one per job, on `CallState.recorder`) turns what happens in a call into
rows of the desk's call records (desk/calls.py), metrics and spans (agent/telemetry.py):

- `conversation_item_added`: the final transcript of both sides (agent turns cut off by
  the caller are marked interrupted; a later, fuller final transcript of the same item
  replaces the earlier one);
- `function_tools_executed`: each tool call with its id, name, redacted arguments (phones
  and emails masked as agent/tools/access.py does for callers, other text scrubbed by
  agent/pii.py), outcome (ok, error + sentence, timeout, cancelled), duration, case touched;
- `metrics_collected` (`RealtimeModelMetrics`, the plugin's reading of Gemini's
  `usageMetadata`): tokens by modality and the estimated cost from the price table;
- `agent_state_changed` to "speaking" after the caller's end of speech (the Gemini
  layer's speech gate, `CallHooks.on_caller_speech_ended`): turn latency, tool time apart;
- kaiwa's recoveries (agent/faults.py `recovery_listener`);
- `close` and the job's shutdown: the end and its reason.

Nothing here runs on the audio path except `caller_speech_ended` (stores one float). Rows
are collected in memory and written by a background task every KAIWA_CALL_FLUSH_S
seconds, in one transaction per batch, through a worker thread; the last batch is written
at the job's shutdown. A killed job loses at most its unwritten batch, and its replacement
(same scope, agent/lifecycle.py `call_scope`) appends to the same call row.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from desk.calls import (
    CallBatch,
    RecoveryRecord,
    Segment,
    ToolRecord,
    TurnRecord,
    Usage,
)

from . import pii, telemetry
from .faults import recovery_listener
from .tools.access import mask_email, mask_phone

if TYPE_CHECKING:
    from livekit.agents import AgentSession, JobContext

    from .call import CallState
    from .settings import Settings

logger = logging.getLogger("kaiwa.recorder")

Writer = Callable[[CallBatch], int]

_CASE_ID = re.compile(r"\bR-\d+\b")
# agent/tools/sentences.py timed_out(), in both languages
_TIMEOUT = re.compile(r"took longer than [\d.]+ seconds and was stopped|秒以内に終わらなかった")
MAX_TURN_LATENCY_S = 60.0  # longer: the turn went unanswered, not slow


@dataclass(frozen=True)
class Prices:
    """Per 1M tokens, in `currency` (settings: KAIWA_PRICE_*, KAIWA_CURRENCY)."""

    input_text: float = 0.50
    input_audio: float = 3.00  # audio, image and video input
    output_text: float = 2.00
    output_audio: float = 12.00
    cached_input: float | None = None  # None: cached tokens cost what uncached ones do
    currency: str = "USD"

    @classmethod
    def from_settings(cls, s: Settings) -> Prices:
        return cls(
            input_text=s.price_input_text,
            input_audio=s.price_input_audio,
            output_text=s.price_output_text,
            output_audio=s.price_output_audio,
            cached_input=s.price_cached_input,
            currency=s.currency,
        )

    def cost(self, usage: Usage, cached_text: int = 0) -> float:
        """Estimated cost of `usage`; `cached_text`: how many of its cached tokens are
        text (the rest count as audio/image)."""
        cached_text = min(cached_text, usage.input_cached, usage.input_text)
        cached_media = min(usage.input_cached - cached_text, usage.input_audio + usage.input_image)
        text = usage.input_text - cached_text
        media = usage.input_audio + usage.input_image - cached_media
        total = text * self.input_text + media * self.input_audio
        if self.cached_input is None:
            total += cached_text * self.input_text + cached_media * self.input_audio
        else:
            total += (cached_text + cached_media) * self.cached_input
        total += usage.output_text * self.output_text + usage.output_audio * self.output_audio
        return total / 1_000_000


def usage_of(metrics: Any) -> tuple[Usage, int]:
    """(Usage, cached text tokens) from a RealtimeModelMetrics.

    Input tokens the details don't attribute to a modality count as text."""
    ind, outd = metrics.input_token_details, metrics.output_token_details
    audio, text, image = ind.audio_tokens, ind.text_tokens, ind.image_tokens
    text += max(0, int(metrics.input_tokens) - (audio + text + image))
    out_audio, out_text = outd.audio_tokens, outd.text_tokens
    out_text += max(0, int(metrics.output_tokens) - (out_audio + out_text + outd.image_tokens))
    cached_details = ind.cached_tokens_details
    usage = Usage(
        input_audio=audio,
        input_text=text,
        input_image=image,
        input_cached=ind.cached_tokens,
        output_audio=out_audio,
        output_text=out_text + outd.image_tokens,
    )
    return usage, (cached_details.text_tokens if cached_details is not None else 0)


def redact_arguments(raw: str) -> str:
    """Tool arguments as stored: phones and emails masked, other text scrubbed."""
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        return json.dumps(pii.scrub(raw), ensure_ascii=False)

    def clean(key: str, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(str(k), v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(key, v) for v in value]
        if not isinstance(value, str | int) or isinstance(value, bool):
            return value
        k = key.lower()
        if "last4" in k or "last_4" in k:
            return "****"  # a verification answer
        if "phone" in k or k in ("tel", "telephone", "mobile"):
            return mask_phone(str(value)) or "***"
        if "mail" in k:
            return mask_email(str(value)) or "***"
        return pii.scrub(value) if isinstance(value, str) else value

    return json.dumps(clean("", data), ensure_ascii=False, sort_keys=True)


def case_touched(arguments: str, output: str) -> str | None:
    """The case a tool call was about: named in its arguments, or the one case its output
    names (a list of several cases touched none in particular)."""
    named = set(_CASE_ID.findall(arguments))
    if len(named) == 1:
        return named.pop()
    found = list(dict.fromkeys(_CASE_ID.findall(output)))
    return found[0] if len(found) == 1 else None


def outcome_of(output: Any) -> tuple[str, str | None]:
    """(outcome, error sentence) of a FunctionCallOutput."""
    if output.is_error:
        text = pii.scrub(str(output.output))[:500]
        return ("timeout" if _TIMEOUT.search(text) else "error"), text
    if not output.reply_required and not output.output:
        return "cancelled", None  # StopResponse: the model cancelled the call
    return "ok", None


def _wall(t: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, dt.UTC)


def _ns(t: float) -> int:
    return int(t * 1e9)


def _merge(first: CallBatch, then: CallBatch) -> CallBatch:
    """`first` (a batch whose write failed) followed by `then`."""
    merged = dataclasses.replace(
        then,
        started_at=first.started_at or then.started_at,
        segments=[*first.segments, *then.segments],
        tools=[*first.tools, *then.tools],
        recoveries=[*first.recoveries, *then.recoveries],
        turns=[*first.turns, *then.turns],
        usage=first.usage + then.usage,
        cost=first.cost + then.cost,
    )
    for name in ("role", "identity", "channel", "model", "currency", "ended_at", "end_reason"):
        if getattr(merged, name) is None:
            setattr(merged, name, getattr(first, name))
    return merged


class CallRecorder:
    def __init__(
        self,
        writer: Writer | None,
        *,
        scope: str,
        room: str,
        job_id: str,
        prices: Prices | None = None,
        model: str | None = None,
        flush_s: float = 1.0,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        self._writer = writer
        self.scope, self.room, self.job_id = scope, room, job_id
        self.prices = prices or Prices()
        self._flush_s = flush_s
        self._wall, self._mono = wall, mono
        self.started_at = wall()
        self._batch = self._new_batch(
            started_at=_wall(self.started_at),
            model=model,
            currency=self.prices.currency,
        )
        self.role = "unknown"
        self._identified = False
        self._closed = False
        self._end_reason: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._speech_end: float | None = None  # wall time of the caller's end of speech
        self._tool_spans: list[tuple[float, float]] = []  # recent tool runs (wall)
        self.latencies: list[float] = []
        self.usage = Usage()
        self.cost = 0.0
        self.writes = 0
        self._span = telemetry.tracer().start_span(
            "kaiwa.call",
            start_time=_ns(self.started_at),
            attributes={"kaiwa.scope": scope, "kaiwa.room": room, "kaiwa.job_id": job_id},
        )
        self._ctx = trace.set_span_in_context(self._span)

    def _new_batch(self, **fields: Any) -> CallBatch:
        return CallBatch(scope=self.scope, room=self.room, job_id=self.job_id, **fields)

    # ------------------------------------------------------------ wiring

    def identify(self, role: str, identity: str | None, channel: str | None) -> None:
        """Who is talking (the signed role); from now on the call is written."""
        self.role = role
        self._batch.role, self._batch.identity, self._batch.channel = role, identity, channel
        self._span.set_attribute("kaiwa.role", role)
        if not self._identified:
            self._identified = True
            telemetry.CALLS_ACTIVE.labels(role=role).inc()

    def attach(self, session: AgentSession[Any]) -> None:
        session.on("conversation_item_added", self._guarded(self.on_item_added))
        session.on("function_tools_executed", self._guarded(self.on_tools_executed))
        session.on("metrics_collected", self._guarded(self.on_metrics))
        session.on("agent_state_changed", self._guarded(self.on_agent_state))
        session.on("close", self._guarded(self.on_close))

    def _guarded(self, fn: Callable[[Any], None]) -> Callable[[Any], None]:
        def handler(ev: Any) -> None:
            try:
                fn(ev)
            except Exception:  # a record must never break the call
                logger.exception("call recorder failed on %s", type(ev).__name__)

        return handler

    def start(self) -> None:
        if self._task is None and self._writer is not None:
            self._task = asyncio.create_task(self._flush_loop(), name="kaiwa-call-recorder")

    # ------------------------------------------------------------ events

    def on_item_added(self, ev: Any) -> None:
        item = ev.item
        role = getattr(item, "role", None)
        if getattr(item, "type", None) != "message" or role not in ("user", "assistant"):
            return
        text = (item.text_content or "").strip()
        if not text:
            return
        self._batch.segments.append(
            Segment(
                at=_wall(item.created_at),
                speaker="caller" if role == "user" else "agent",
                text=text,
                interrupted=bool(item.interrupted) and role == "assistant",
                item_id=item.id,
            )
        )

    def on_tools_executed(self, ev: Any) -> None:
        for call, out in ev.zipped():
            outcome, error = outcome_of(out)
            started, ended = float(call.created_at), max(float(call.created_at), out.created_at)
            case_id = case_touched(call.arguments or "", str(out.output or ""))
            self._batch.tools.append(
                ToolRecord(
                    at=_wall(started),
                    call_key=call.call_id,
                    name=call.name,
                    arguments=redact_arguments(call.arguments or ""),
                    outcome=outcome,
                    duration_ms=round((ended - started) * 1000),
                    error=error,
                    case_id=case_id,
                )
            )
            self._tool_spans.append((started, ended))
            telemetry.TOOL_CALLS.labels(tool=call.name, outcome=outcome).inc()
            span = telemetry.tracer().start_span(
                "kaiwa.tool_call",
                context=self._ctx,
                start_time=_ns(started),
                attributes={
                    "kaiwa.tool": call.name,
                    "kaiwa.call_id": call.call_id,
                    "kaiwa.outcome": outcome,
                    **({"kaiwa.case_id": case_id} if case_id else {}),
                },
            )
            if outcome in ("error", "timeout"):
                span.set_status(Status(StatusCode.ERROR, outcome))
            span.end(end_time=_ns(ended))
        del self._tool_spans[:-32]

    def on_metrics(self, ev: Any) -> None:
        m = ev.metrics
        if getattr(m, "type", None) != "realtime_model_metrics":
            return
        usage, cached_text = usage_of(m)
        cost = self.prices.cost(usage, cached_text)
        self._batch.usage = self._batch.usage + usage
        self._batch.cost += cost
        self.usage, self.cost = self.usage + usage, self.cost + cost
        for direction, modality, n in (
            ("input", "audio", usage.input_audio),
            ("input", "text", usage.input_text),
            ("input", "image", usage.input_image),
            ("input", "cached", usage.input_cached),
            ("output", "audio", usage.output_audio),
            ("output", "text", usage.output_text),
        ):
            if n:
                telemetry.TOKENS.labels(direction=direction, modality=modality).inc(n)
        if cost:
            telemetry.COST.labels(currency=self.prices.currency).inc(cost)

    def caller_speech_ended(self, at_monotonic: float) -> None:
        """CallHooks.on_caller_speech_ended (on the audio path: store a float, nothing else)."""
        self._speech_end = self._wall() - (self._mono() - at_monotonic)

    def on_agent_state(self, ev: Any) -> None:
        if ev.new_state != "speaking" or self._speech_end is None:
            return
        start, self._speech_end = self._speech_end, None
        now = self._wall()
        waited = now - start
        if waited < 0 or waited > MAX_TURN_LATENCY_S:
            return
        tool_s = sum(max(0.0, min(end, now) - max(begin, start)) for begin, end in self._tool_spans)
        latency = max(0.0, waited - tool_s)
        self.latencies.append(latency)
        self._batch.turns.append(
            TurnRecord(at=_wall(start), latency_ms=round(latency * 1000),
                       tool_ms=round(tool_s * 1000))
        )  # fmt: skip
        telemetry.TURN_LATENCY.labels(role=self.role).observe(latency)
        if tool_s:
            telemetry.TURN_TOOL_SECONDS.labels(role=self.role).observe(tool_s)

    def recovery(self, kind: str, duration_s: float, details: dict[str, Any]) -> None:
        """agent/faults.py's recovery_listener for this call."""
        now = self._wall()
        began = now - max(0.0, duration_s)
        safe = {k: v if isinstance(v, int | float | bool) else str(v) for k, v in details.items()}
        self._batch.recoveries.append(
            RecoveryRecord(
                at=_wall(began),
                kind=kind,
                duration_s=round(duration_s, 3),
                detail=json.dumps(safe, ensure_ascii=False, sort_keys=True),
            )
        )
        span = telemetry.tracer().start_span(
            "kaiwa.recovery",
            context=self._ctx,
            start_time=_ns(began),
            attributes={"kaiwa.recovery_kind": kind, "kaiwa.recovery_s": duration_s},
        )
        span.end(end_time=_ns(now))

    def on_close(self, ev: Any) -> None:
        reason = getattr(ev, "reason", None)
        self._end_reason = str(getattr(reason, "value", reason) or "closed")
        if ev.error is not None:
            self._end_reason = "error"

    # ------------------------------------------------------------ writing

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self._flush_s)
            await self.flush()

    async def flush(self) -> bool:
        """Write what was collected (in a thread); on failure keep it for the next try."""
        if self._writer is None or not self._identified:
            return True
        async with self._lock:
            batch, self._batch = self._batch, self._new_batch()
            if batch.empty():
                return True
            try:
                await asyncio.to_thread(self._writer, batch)
            except Exception as e:
                logger.warning("could not write the call record (%s); will retry", e)
                self._batch = _merge(batch, self._batch)
                return False
            self.writes += 1
            return True

    async def aclose(self, reason: str | None = None) -> None:
        """The call ended: write the end and the last batch (a job shutdown callback)."""
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        end_reason = self._end_reason or reason or "job_shutdown"
        ended = self._wall()
        self._batch.ended_at, self._batch.end_reason = _wall(ended), end_reason
        for _ in range(3):
            if await self.flush():
                break
            await asyncio.sleep(0.2)
        if self._identified:
            telemetry.CALLS_ACTIVE.labels(role=self.role).dec()
            telemetry.CALLS_ENDED.labels(reason=end_reason).inc()
        self._span.set_attribute("kaiwa.end_reason", end_reason)
        self._span.set_attribute("kaiwa.cost", self.cost)
        self._span.end(end_time=_ns(ended))


# ---------------------------------------------------------------- the worker's few lines


def start_recording(ctx: JobContext, settings: Settings, call: CallState) -> CallRecorder:
    """A recorder for this job's call, on `call.recorder`: recoveries of this call's tasks
    reach it, its last batch is written at the job's shutdown. With KAIWA_CALL_RECORDS
    off it still feeds metrics and traces, and writes nothing."""
    telemetry.setup_tracing(settings.otel_endpoint, allow_pii=settings.log_pii)
    desk = call.services.desk
    recorder = CallRecorder(
        desk.calls.write if settings.call_records else None,
        scope=call.scope,
        room=ctx.job.room.name,
        job_id=ctx.job.id,
        prices=Prices.from_settings(settings),
        model=settings.model,
        flush_s=settings.call_flush_s,
    )
    call.recorder = recorder
    recovery_listener.set(recorder.recovery)  # this job's tasks inherit it

    async def end_record(reason: str) -> None:
        await recorder.aclose(reason or None)

    ctx.add_shutdown_callback(end_record)
    recorder.start()
    return recorder


def purge_old_transcripts(settings: Settings) -> int:
    """Retention at worker start (KAIWA_CALL_RETENTION_DAYS); never stops the worker."""
    if settings.call_retention_days is None:
        return 0
    from desk import Desk

    try:
        desk = Desk.open(settings.desk_db)
        try:
            n = desk.calls.purge_transcripts(settings.call_retention_days)
        finally:
            desk.close()
    except Exception as e:
        logger.warning("could not purge old call transcripts: %s", e)
        return 0
    if n:
        logger.info(
            "purged the transcripts of %d call(s) older than %g days",
            n,
            settings.call_retention_days,
        )
    return n

"""One place where every recovery from a fault is reported.

`record_recovery(kind, duration_s, **details)` does two things, always both:

* logs ONE structured line on the `kaiwa.faults` logger: the message carries
  `kind=… duration_s=… key=value…` (greppable in any log format) and the same fields ride
  on the record as `extra` (`fault_kind`, `recovery_s`, then the details), so a JSON log
  formatter ships them as fields;
* increments the Prometheus counter `kaiwa_recoveries_total{kind}` and observes the
  histogram `kaiwa_recovery_seconds{kind}`.

`kind` is a short snake_case name of the fault (`participant_rejoin`, `job_redispatch`,
`worker_reconnect`, `gemini_reconnect`, …); keep the set small, it is a label. `details`
says what was replayed or kept (e.g. `replayed_turns=3`, `same_session=True`); values are
logged, never used as labels.

The call being recovered hears of it too: the worker sets `recovery_listener` (a context
variable, so each call's tasks see their own recorder even when calls share a process) to
the call's recorder (agent/recorder.py), which keeps the recovery in the call record.

The metrics live in prometheus_client's default registry. With `PROMETHEUS_MULTIPROC_DIR`
set before prometheus_client is imported (the worker does this when `KAIWA_METRICS_PORT`
is set), job processes write them to that directory and the worker's `/metrics` endpoint
aggregates them.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter, Histogram

logger = logging.getLogger("kaiwa.faults")

RECOVERIES = Counter(
    "kaiwa_recoveries",
    "Faults kaiwa recovered from, by kind",
    ["kind"],
)
RECOVERY_SECONDS = Histogram(
    "kaiwa_recovery_seconds",
    "Time from noticing a fault to having recovered from it, by kind",
    ["kind"],
    buckets=(0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0),
)

# (kind, duration_s, details) -> None; set per call by the worker, read in the call's tasks
RecoveryListener = Callable[[str, float, dict[str, Any]], None]
recovery_listener: contextvars.ContextVar[RecoveryListener | None] = contextvars.ContextVar(
    "kaiwa_recovery_listener", default=None
)

# LogRecord attributes that `extra` may not overwrite (logging raises KeyError on them).
_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    text = str(value)
    return repr(text) if (" " in text or not text) else text


def record_recovery(kind: str, duration_s: float, **details: Any) -> None:
    """Report one recovery: one log line on `kaiwa.faults` and the metrics (never raises)."""
    duration_s = max(0.0, float(duration_s))
    try:
        RECOVERIES.labels(kind=kind).inc()
        RECOVERY_SECONDS.labels(kind=kind).observe(duration_s)
    except Exception:  # metrics must never break a recovery
        logger.exception("could not update recovery metrics", extra={"fault_kind": kind})
    listener = recovery_listener.get()
    if listener is not None:
        try:
            listener(kind, duration_s, dict(details))
        except Exception:  # nor may the call record
            logger.exception("could not record the recovery", extra={"fault_kind": kind})
    extra: dict[str, Any] = {"fault_kind": kind, "recovery_s": round(duration_s, 3)}
    for key, value in details.items():
        extra[f"detail_{key}" if key in _RESERVED or key in extra else key] = value
    fields = " ".join(f"{k}={_fmt(v)}" for k, v in details.items())
    logger.info(
        "recovery kind=%s duration_s=%.3f%s",
        kind,
        duration_s,
        f" {fields}" if fields else "",
        extra=extra,
    )

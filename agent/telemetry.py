"""Call metrics (Prometheus) and traces (OpenTelemetry) for every call.

Prometheus, in the default registry like agent/faults.py (multiprocess mode when
KAIWA_METRICS_PORT is set, so job processes' values reach the worker's /metrics):

- `kaiwa_calls_active{role}` (gauge, live sum over processes): calls in progress;
- `kaiwa_calls_ended_total{reason}`: how calls ended (participant_disconnected, error, …);
- `kaiwa_turn_latency_seconds{role}`: the caller's end of speech (as the worker's gate saw it)
  to the agent's first audio, tool time taken out; `kaiwa_turn_tool_seconds{role}`: that tool time;
- `kaiwa_tool_calls_total{tool,outcome}`: outcome ok | error | timeout | cancelled;
- `kaiwa_gemini_tokens_total{direction,modality}`: input/output by audio/text/image, and
  input "cached";
- `kaiwa_call_cost_total{currency}`: the estimated cost (price table in settings);
- recoveries: `kaiwa_recoveries_total{kind}` and `kaiwa_recovery_seconds` (agent/faults.py).

OpenTelemetry: with KAIWA_OTEL_ENDPOINT, `setup_tracing` gives livekit-agents an SDK tracer
provider exporting over OTLP/HTTP (the framework's own spans: agent_session, agent_turn,
function_tool, …), and kaiwa adds, per call, a `kaiwa.call` span with `kaiwa.tool_call` and
`kaiwa.recovery` children (agent/recorder.py), stamped with the times they happened.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from opentelemetry import trace
from prometheus_client import Counter, Gauge, Histogram

logger = logging.getLogger("kaiwa.telemetry")

# every metric has a label: children are created at first use, after the worker switched
# prometheus_client to multiprocess mode (see agent/lifecycle.py)
CALLS_ACTIVE = Gauge(
    "kaiwa_calls_active", "Calls in progress, by role", ["role"], multiprocess_mode="livesum"
)
CALLS_ENDED = Counter("kaiwa_calls_ended", "Calls ended, by end reason", ["reason"])
TURN_LATENCY = Histogram(
    "kaiwa_turn_latency_seconds",
    "Caller's end of speech to the agent's first audio, tool time not included, by role",
    ["role"],
    buckets=(0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0),
)
TURN_TOOL_SECONDS = Histogram(
    "kaiwa_turn_tool_seconds",
    "Tool time inside a caller turn's wait for the agent's answer, by role",
    ["role"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0),
)
TOOL_CALLS = Counter("kaiwa_tool_calls", "Tool calls, by tool and outcome", ["tool", "outcome"])
TOKENS = Counter(
    "kaiwa_gemini_tokens", "Gemini tokens, by direction and modality", ["direction", "modality"]
)
COST = Counter("kaiwa_call_cost", "Estimated Gemini cost of calls", ["currency"])

TRACER_NAME = "kaiwa"
_setup_lock = threading.Lock()
_provider: Any = None  # the SDK provider this process set up (one per process)


def tracer() -> trace.Tracer:
    """kaiwa's tracer: on the provider given to livekit-agents here, else the global one."""
    if _provider is not None:
        return _provider.get_tracer(TRACER_NAME)
    return trace.get_tracer(TRACER_NAME)


def setup_tracing(endpoint: str | None, *, allow_pii: bool = False, service: str = "kaiwa") -> bool:
    """Export livekit-agents' traces and kaiwa's spans over OTLP/HTTP (once per process).

    Returns False when no endpoint is configured or the exporter is not installed."""
    global _provider
    if not endpoint:
        return False
    with _setup_lock:
        if _provider is not None:
            return True
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError:
            logger.warning(
                "KAIWA_OTEL_ENDPOINT is set but opentelemetry-exporter-otlp is not installed"
            )
            return False
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        use_provider(provider, allow_pii=allow_pii)
        return True


def use_provider(provider: Any, *, allow_pii: bool = False) -> None:
    """Hand a tracer provider to livekit-agents (and kaiwa's spans); tests pass one with
    an in-memory exporter."""
    global _provider
    from livekit.agents import telemetry

    telemetry.set_tracer_provider(provider, allow_pii=allow_pii)
    _provider = provider


def reset_for_tests() -> None:
    global _provider
    _provider = None

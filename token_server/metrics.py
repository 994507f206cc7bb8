"""Prometheus metrics of one app instance (own registry, so tests can build many apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "kaiwa_token_http_requests",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.refusals = Counter(
            "kaiwa_token_refusals",
            "Requests answered with an error, by error code.",
            ["reason"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "kaiwa_token_http_request_duration_seconds",
            "Time to answer a request, by route template.",
            ["route"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.tokens_issued = Counter(
            "kaiwa_tokens_issued",
            "Access tokens issued, by dispatched agent.",
            ["agent"],
            registry=self.registry,
        )
        self.rooms = Gauge(
            "kaiwa_livekit_rooms",
            "Active LiveKit rooms as seen through webhooks.",
            registry=self.registry,
        )
        self.participants = Gauge(
            "kaiwa_livekit_participants",
            "Participants in active rooms as seen through webhooks.",
            registry=self.registry,
        )

    def refusal(self, reason: str) -> None:
        self.refusals.labels(reason=reason).inc()

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

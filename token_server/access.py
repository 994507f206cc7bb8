"""Access log line and request metrics for every HTTP request.

One JSON line per request (method, path, status, duration, client). The path is logged
without its query string and no header or body is logged, so tokens and keys never
reach the log.
"""

from __future__ import annotations

import json
import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from token_server.metrics import Metrics
from token_server.proxies import TrustedProxies

log = logging.getLogger("token_server.access")


def route_label(scope: Scope) -> str:
    """Route template (bounded label set); unmatched paths share one label."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if route is None or path is None:
        return "unmatched"
    return path or "/static"


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str) -> str:
    return method if method in _METHODS else "OTHER"


class AccessMiddleware:
    def __init__(
        self, app: ASGIApp, *, metrics: Metrics, proxies: TrustedProxies | None = None
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.proxies = proxies or TrustedProxies()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # if the app raises before answering

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            route = route_label(scope)
            self.metrics.requests.labels(
                route=route, method=method_label(scope["method"]), status=str(status)
            ).inc()
            self.metrics.latency.labels(route=route).observe(elapsed)
            if log.isEnabledFor(logging.INFO):
                log.info(
                    json.dumps(
                        {
                            "event": "http_request",
                            "method": scope["method"][:16],
                            "path": scope["path"][:256],
                            "route": route,
                            "status": status,
                            "duration_ms": round(elapsed * 1000, 2),
                            "client": self._client(scope)[:64],
                        },
                        ensure_ascii=True,
                    )
                )

    def _client(self, scope: Scope) -> str:
        """The client address as the rate limiter sees it (X-Forwarded-For only from a
        trusted proxy)."""
        client = scope.get("client")
        peer = client[0] if client else None
        forwarded = [
            value.decode("latin-1")
            for name, value in scope.get("headers", ())
            if name == b"x-forwarded-for"
        ]
        return self.proxies.client_ip(peer, forwarded)

"""HTTP routes of the token server: `create_app(settings) -> FastAPI`.

Routes
  POST /token                      LiveKit token endpoint (TokenSource "endpoint" shape)
  POST|GET /api/connection-details older agent-starter-react shape (camelCase)
  GET  /healthz, /readyz, /metrics liveness, LiveKit reachability, Prometheus text
  POST /livekit/webhook            LiveKit webhooks (signed), feeds room gauges
  GET  /api/console/...            staff console data (staff only; console.py)
  /console                         the staff console page
  /                                the web page (static files)

Only the two token routes are behind KAIWA_TOKEN_AUTH, the rate limit and the
per-identity session cap: health and metrics are for the operator's probes (bind the
server to loopback or filter /metrics at the proxy if room counts are sensitive), the
webhook carries its own signature, and the page is public by nature.

Client addresses: X-Forwarded-For and the proxy identity header are believed only from
KAIWA_TRUSTED_PROXIES (default: loopback); uvicorn's own proxy-header handling is off.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response
from starlette.routing import Match
from starlette.types import Scope

from token_server.access import AccessMiddleware
from token_server.auth import Authenticator
from token_server.bodylimit import BodyLimitMiddleware
from token_server.console import mount_console
from token_server.errors import NO_STORE, ApiError, CatchAllMiddleware, error_response
from token_server.metrics import Metrics
from token_server.models import (
    ConnectionDetails,
    ErrorBody,
    HealthBody,
    TokenRequest,
    TokenResponse,
)
from token_server.policy import Decision, PolicyConfig, Refusal, decide
from token_server.proxies import TrustedProxies
from token_server.ratelimit import TokenBucketLimiter, retry_after_header
from token_server.readiness import LiveKitProbe
from token_server.roles import Channel
from token_server.sessions import (
    LiveKitRooms,
    SessionGuard,
    SessionSource,
    SessionsUnavailable,
    TooManySessions,
)
from token_server.settings import AuthMode, Settings
from token_server.startup import check_settings
from token_server.tokens import TokenMinter
from token_server.web import mount_web
from token_server.webhook import RoomTracker

log = logging.getLogger("token_server")

Probe = Callable[[], Awaitable[str | None]]

WEBHOOK_PATH = "/livekit/webhook"
WEBHOOK_MAX_BODY = 1 << 20  # room/participant payloads are larger than token requests

_ERR = {"model": ErrorBody}
_TOKEN_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {**_ERR, "description": "Malformed request (bad JSON, wrong types, limits)."},
    401: {**_ERR, "description": "Not authenticated (bearer/proxy modes)."},
    403: {**_ERR, "description": "Well-formed but not permitted by this server's policy."},
    413: {**_ERR, "description": "Body larger than KAIWA_TOKEN_MAX_BODY_BYTES."},
    415: {**_ERR, "description": "Body is not application/json."},
    429: {
        **_ERR,
        "description": "Rate limited (rate_limited; see Retry-After), or the identity "
        "already holds KAIWA_MAX_SESSIONS_PER_IDENTITY live sessions (too_many_sessions).",
        "headers": {
            "Retry-After": {"schema": {"type": "string"}, "description": "Seconds to wait."}
        },
    },
    500: {**_ERR, "description": "Unexpected server error (a bug)."},
    503: {
        **_ERR,
        "description": "The session cap cannot count this identity's sessions (LiveKit "
        "server API unreachable); it fails closed. See Retry-After.",
        "headers": {
            "Retry-After": {"schema": {"type": "string"}, "description": "Seconds to wait."}
        },
    },
}

# Request headers a cross-origin browser client may send (CORS preflight). LiveKit's
# TokenSource.endpoint sends Content-Type plus whatever headers the app configures
# (Authorization for bearer auth); agent-starter-react and TokenSource.sandboxTokenServer
# send X-Sandbox-Id. Accept is listed for clients that set it explicitly.
CORS_ALLOW_HEADERS = ["authorization", "content-type", "accept", "x-sandbox-id"]
_TOKEN_BODY = {
    "requestBody": {
        "required": False,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TokenRequest"}}},
    }
}


def create_app(
    settings: Settings, *, probe: Probe | None = None, sessions: SessionSource | None = None
) -> FastAPI:
    """Build the app. Raises `StartupError` for unusable or unsafe settings.

    `probe` replaces the LiveKit readiness check and `sessions` the livekit-server room
    listing behind the session cap (tests).
    """
    check_settings(settings)
    assert settings.livekit_api_key and settings.livekit_api_secret  # checked above

    metrics = Metrics()
    auth = Authenticator(settings)
    proxies = TrustedProxies(settings.trusted_proxies)
    if sessions is None:
        sessions = LiveKitRooms(
            settings.livekit_url,
            settings.livekit_api_key,
            settings.livekit_api_secret.get_secret_value(),
        )
    guard = SessionGuard(sessions, settings.max_sessions_per_identity)
    limiter = TokenBucketLimiter(settings.token_rate, settings.token_burst)
    minter = TokenMinter(settings.livekit_api_key, settings.livekit_api_secret.get_secret_value())
    tracker = RoomTracker(
        settings.livekit_api_key, settings.livekit_api_secret.get_secret_value(), metrics
    )
    policy = PolicyConfig(
        default_agent=settings.agent_name,
        allowed_agents=frozenset(settings.allowed_agent_names),
        ttl_seconds=settings.token_ttl_seconds,
        max_ttl_seconds=settings.token_max_ttl_seconds,
        allow_client_room_names=settings.allow_client_room_names,
        allow_client_identities=settings.allow_client_identities,
        staff_identities=frozenset(settings.staff_identities),
        ptt_identities=frozenset(settings.ptt_identities),
    )
    server_url = settings.client_livekit_url
    own_probe = LiveKitProbe(settings.livekit_url) if probe is None else None
    readiness: Probe = probe or own_probe  # type: ignore[assignment]

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if own_probe is not None:
            await own_probe.aclose()
        await guard.aclose()
        console_desk.close()

    app = FastAPI(
        title="kaiwa token server",
        version="0.1.0",
        description="Issues LiveKit room tokens to kaiwa's web and mobile clients.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.metrics = metrics

    # -- errors: every failure is {"error", "detail"} JSON, never a stack trace --------

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> Response:
        metrics.refusal(exc.code)
        return error_response(exc.status, exc.code, exc.detail, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        metrics.refusal(code)
        detail = exc.detail if isinstance(exc.detail, str) else code
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette names only the first route's methods; GET and POST of
            # /api/connection-details are separate routes.
            headers["Allow"] = ", ".join(_allowed_methods(app, request.scope))
        return error_response(exc.status_code, code, detail, headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        metrics.refusal("invalid_request")
        return error_response(400, "invalid_request", _summarize(exc.errors()))

    # -- token issuance ---------------------------------------------------------------

    async def issue(request: Request, body: TokenRequest | None) -> Decision:
        peer = request.client.host if request.client else None
        client_ip = proxies.client_ip(peer, request.headers.getlist("x-forwarded-for"))
        try:
            principal = auth.authenticate(
                request.headers, client_ip, from_trusted_proxy=proxies.is_trusted(peer)
            )
        except ApiError:
            # Failed attempts draw from the caller's IP bucket: slows key guessing.
            ip_wait = limiter.acquire(f"ip:{client_ip}")
            if ip_wait:
                raise _rate_limited(ip_wait) from None
            raise
        wait = limiter.acquire(principal.client_key)
        if wait:
            raise _rate_limited(wait)
        if body is None:
            body = await _read_token_request(request)
        result = decide(
            body,
            policy,
            authenticated_identity=principal.identity,
            staff_credential=principal.staff,
            push_to_talk_credential=principal.push_to_talk,
            channel=_channel(request),
        )
        if isinstance(result, Refusal):
            raise ApiError(result.status, result.code, result.detail)
        if not result.generated_identity:  # a fresh identity holds no other session
            try:
                await guard.admit(result.identity, result.room, result.ttl_seconds)
            except TooManySessions as exc:
                raise ApiError(
                    429,
                    "too_many_sessions",
                    f"this identity already has {exc.live} live sessions (limit "
                    f"{exc.limit}); end one before starting another",
                ) from None
            except SessionsUnavailable:
                raise ApiError(
                    503,
                    "session_check_unavailable",
                    "cannot count this identity's sessions right now (LiveKit server "
                    "API unavailable); retry shortly",
                    {"Retry-After": "2"},
                ) from None
        for agent in result.agents:
            metrics.tokens_issued.labels(agent=agent.agent_name).inc()
        return result

    @app.post(
        "/token",
        response_model=TokenResponse,
        status_code=200,
        responses=_TOKEN_ERRORS,
        openapi_extra=_TOKEN_BODY,
        summary="Issue a LiveKit access token (LiveKit TokenSource endpoint convention)",
        description="Answers 200 (not 201: older Flutter SDKs accept only 200) with "
        "snake_case keys, the only shape every SDK decodes.",
    )
    async def token(request: Request) -> Response:
        decision = await issue(request, None)
        body = TokenResponse(
            server_url=server_url,
            participant_token=minter.mint(decision),
            room_name=decision.room,
            participant_name=decision.name,
            participant_identity=decision.identity,
        )
        return JSONResponse(body.model_dump(), headers=NO_STORE)

    async def connection_details(request: Request, body: TokenRequest | None) -> Response:
        decision = await issue(request, body)
        details = ConnectionDetails(
            serverUrl=server_url,
            roomName=decision.room,
            participantName=decision.name,
            participantToken=minter.mint(decision),
        )
        return JSONResponse(details.model_dump(), headers=NO_STORE)

    @app.post(
        "/api/connection-details",
        response_model=ConnectionDetails,
        responses=_TOKEN_ERRORS,
        openapi_extra=_TOKEN_BODY,
        summary="Older agent-starter-react endpoint (camelCase answer)",
    )
    async def connection_details_post(request: Request) -> Response:
        return await connection_details(request, None)

    @app.get(
        "/api/connection-details",
        response_model=ConnectionDetails,
        responses={k: v for k, v in _TOKEN_ERRORS.items() if k not in (400, 413, 415)},
        summary="Older agent-starter-react endpoint, GET form (default agent)",
    )
    async def connection_details_get(request: Request) -> Response:
        return await connection_details(request, TokenRequest())

    # -- operations ------------------------------------------------------------------

    @app.get("/healthz", response_model=HealthBody, summary="Liveness")
    async def healthz() -> HealthBody:
        return HealthBody(status="ok")

    @app.get(
        "/readyz",
        response_model=HealthBody,
        responses={503: {**_ERR, "description": "LiveKit server not reachable."}},
        summary="Readiness: the LiveKit server answers HTTP",
    )
    async def readyz() -> Response:
        reason = await readiness()
        if reason is not None:
            metrics.refusal("livekit_unreachable")
            return error_response(503, "livekit_unreachable", reason)
        return JSONResponse({"status": "ready"}, headers=NO_STORE)

    @app.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
        summary="Prometheus metrics",
    )
    async def metrics_route() -> Response:
        payload, content_type = metrics.render()
        return Response(payload, media_type=content_type)

    @app.post(
        WEBHOOK_PATH,
        response_model=HealthBody,
        responses={
            400: {**_ERR, "description": "Signed, but not a LiveKit webhook event."},
            401: {**_ERR, "description": "Missing or invalid webhook signature."},
            413: {**_ERR, "description": "Body too large."},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/webhook+json": {"schema": {"type": "object"}}},
            },
            "parameters": [
                {
                    "name": "Authorization",
                    "in": "header",
                    "required": True,
                    "schema": {"type": "string"},
                    "description": "JWT signed with the LiveKit API secret (sha256 of body).",
                }
            ],
        },
        summary="LiveKit webhook receiver (room and participant gauges)",
    )
    async def webhook(request: Request) -> Response:
        event = tracker.receive(await request.body(), request.headers.get("authorization", ""))
        log.debug("webhook %s", event)
        return JSONResponse({"status": "ok"})

    # the staff console's data (/api/console/..., staff only; token_server/console.py)
    console_desk = mount_console(app, settings, auth=auth, proxies=proxies)
    mount_web(app, settings.web_dir)

    # Outermost last: access log/metrics → CORS → body limit → catch-all → routes.
    app.add_middleware(CatchAllMiddleware, on_error=metrics.refusal)
    app.add_middleware(
        BodyLimitMiddleware,
        limit=settings.token_max_body_bytes,
        path_limits={WEBHOOK_PATH: max(WEBHOOK_MAX_BODY, settings.token_max_body_bytes)},
        on_refuse=metrics.refusal,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=CORS_ALLOW_HEADERS,
            allow_credentials=False,  # auth is a header, never a cookie
            max_age=600,
        )
    app.add_middleware(AccessMiddleware, metrics=metrics, proxies=proxies)

    app.openapi = lambda: _openapi(app, settings)  # type: ignore[method-assign]
    return app


def _allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    methods: set[str] = set()
    for route in app.router.routes:
        match, _ = route.matches(scope)
        if match is Match.PARTIAL:  # path matches, method does not
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


def _channel(request: Request) -> Channel:
    """`web` for a same-origin browser request (our page), else `livekit-client`.

    Browsers send Sec-Fetch-Site; older ones only Origin, compared with Host. Both are
    easy to imitate outside a browser, which is why the channel is only a hint.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return Channel.WEB if site == "same-origin" else Channel.LIVEKIT_CLIENT
    origin, host = request.headers.get("origin"), request.headers.get("host")
    if origin and host and urlsplit(origin).netloc.lower() == host.lower():
        return Channel.WEB
    return Channel.LIVEKIT_CLIENT


def _rate_limited(wait: float) -> ApiError:
    return ApiError(
        429,
        "rate_limited",
        "too many token requests; retry later",
        {"Retry-After": retry_after_header(wait)},
    )


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def _read_token_request(request: Request) -> TokenRequest:
    raw = await request.body()
    if not raw.strip():
        return TokenRequest()  # an empty body means "all defaults", like {}
    content_type = request.headers.get("content-type")
    if content_type is not None and not _is_json(content_type):
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # also UnicodeDecodeError, too-deep nesting
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
    if not isinstance(data, dict):  # JSON null too: the spec says object
        raise ApiError(400, "invalid_request", "the body must be a JSON object")
    try:
        return TokenRequest.model_validate(data)
    except ValidationError as exc:
        raise ApiError(400, "invalid_request", _summarize(exc.errors())) from None
    except RecursionError:
        raise ApiError(400, "invalid_request", "the body is nested too deeply") from None


def _summarize(errors: Any) -> str:
    """Short, log-safe description: field paths and messages, never input values."""
    parts = []
    for err in list(errors)[:3]:
        loc = ".".join(str(p)[:40] for p in err.get("loc", ()) if p != "body")
        parts.append(f"{loc or 'body'}: {err.get('msg', 'invalid')}")
    more = len(errors) - 3
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def _openapi(app: FastAPI, settings: Settings) -> dict[str, Any]:
    """FastAPI's schema plus what it cannot infer from manually parsed routes."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    request_schema = TokenRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(request_schema.pop("$defs", {}))
    components["TokenRequest"] = request_schema
    # Publish the allow-list: any other agent name is refused (403).
    agent_name = components["AgentDispatchRequest"]["properties"]["agent_name"]
    agent_name["anyOf"][0]["enum"] = ["", *sorted(settings.allowed_agent_names)]
    # This app answers 400, not FastAPI's default 422, for validation errors.
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            operation.get("responses", {}).pop("422", None)
    security = _security_scheme(settings)
    if security is not None:
        schema["components"]["securitySchemes"] = {"client": security}
        for path_name in ("/token", "/api/connection-details"):
            for operation in schema["paths"][path_name].values():
                operation["security"] = [{"client": []}]
    app.openapi_schema = schema
    return schema


def _security_scheme(settings: Settings) -> dict[str, Any] | None:
    if settings.token_auth is AuthMode.BEARER:
        return {"type": "http", "scheme": "bearer"}
    if settings.token_auth is AuthMode.PROXY:
        return {"type": "apiKey", "in": "header", "name": settings.token_proxy_header}
    return None

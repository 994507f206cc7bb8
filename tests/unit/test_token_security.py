"""Auth modes, abuse limits, CORS, startup refusals, and keeping the secret secret."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from livekit import api

from tests.unit.test_token_helpers import (
    API_KEY,
    API_SECRET,
    make_app,
    make_client,
    make_settings,
    raw_claims,
)
from token_server.startup import StartupError, check_settings

REPO = Path(__file__).resolve().parents[2]

# -- auth modes ------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "example.com"])
def test_open_mode_refuses_to_start_on_public_host(host: str) -> None:
    with pytest.raises(StartupError, match="KAIWA_TOKEN_FORCE_OPEN"):
        make_app(token_host=host)
    make_app(token_host=host, token_force_open=True)  # explicit opt-in works


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_open_mode_on_loopback_starts(host: str) -> None:
    make_app(token_host=host)


def test_bearer_and_proxy_modes_may_listen_publicly() -> None:
    make_app(token_host="0.0.0.0", token_auth="bearer", token_bearer_keys="k1")
    # Proxy mode only with the proxy named (tests/unit/test_token_proxies.py).
    make_app(token_host="0.0.0.0", token_auth="proxy", trusted_proxies="10.0.0.5")


def test_bearer_mode_needs_keys() -> None:
    with pytest.raises(StartupError, match="KAIWA_TOKEN_BEARER_KEYS"):
        make_app(token_auth="bearer")


def test_bearer_auth() -> None:
    client = make_client(token_auth="bearer", token_bearer_keys="alpha-key, beta-key")
    missing = client.post("/token", json={})
    assert missing.status_code == 401
    assert missing.json()["error"] == "unauthorized"
    assert missing.headers["www-authenticate"].startswith("Bearer")
    wrong = client.post("/token", json={}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and 'error="invalid_token"' in wrong.headers["www-authenticate"]
    basic = client.post("/token", json={}, headers={"Authorization": "Basic YWxwaGEta2V5"})
    assert basic.status_code == 401
    for key in ("alpha-key", "beta-key"):
        ok = client.post("/token", json={}, headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code == 200, ok.text
    ok = client.get("/api/connection-details", headers={"Authorization": "Bearer alpha-key"})
    assert ok.status_code == 200
    # Health and the page stay public.
    assert client.get("/healthz").status_code == 200
    assert client.get("/").status_code == 200


def test_proxy_auth_identity_becomes_participant_identity() -> None:
    client = make_client(token_auth="proxy", token_proxy_header="X-Auth-User")
    assert client.post("/token", json={}).status_code == 401
    response = client.post("/token", json={}, headers={"X-Auth-User": "ada@example.com"})
    assert response.status_code == 200
    data = response.json()
    assert data["participant_identity"] == "ada@example.com"
    assert raw_claims(data["participant_token"])["sub"] == "ada@example.com"
    # The client may repeat its own identity but not claim another one.
    same = client.post(
        "/token",
        json={"participant_identity": "ada@example.com"},
        headers={"X-Auth-User": "ada@example.com"},
    )
    assert same.status_code == 200
    other = client.post(
        "/token", json={"participant_identity": "bob"}, headers={"X-Auth-User": "ada@example.com"}
    )
    assert other.status_code == 403 and other.json()["error"] == "identity_not_allowed"
    odd = client.post("/token", json={}, headers={"X-Auth-User": "Ada Lovelace"})
    assert odd.status_code == 400 and odd.json()["error"] == "invalid_identity"


# -- rate limit and body size ------------------------------------------------------------


def test_rate_limit_429_with_retry_after() -> None:
    client = make_client(token_rate=0.5, token_burst=3)
    statuses = [client.post("/token", json={}).status_code for _ in range(5)]
    assert statuses[:3] == [200, 200, 200]
    assert statuses[3:] == [429, 429]
    limited = client.post("/token", json={})
    assert limited.json()["error"] == "rate_limited"
    assert int(limited.headers["retry-after"]) >= 1
    assert client.get("/healthz").status_code == 200  # not rate limited


def test_rate_limit_is_per_bearer_key() -> None:
    client = make_client(
        token_auth="bearer", token_bearer_keys="a-key,b-key", token_rate=0.1, token_burst=2
    )
    a = {"Authorization": "Bearer a-key"}
    b = {"Authorization": "Bearer b-key"}
    assert [client.post("/token", headers=a).status_code for _ in range(3)] == [200, 200, 429]
    assert client.post("/token", headers=b).status_code == 200


def test_failed_auth_is_rate_limited_too() -> None:
    client = make_client(
        token_auth="bearer", token_bearer_keys="a-key", token_rate=0.1, token_burst=2
    )
    bad = {"Authorization": "Bearer guess"}
    assert [client.post("/token", headers=bad).status_code for _ in range(3)] == [401, 401, 429]


def test_token_bucket_refills() -> None:
    from token_server.ratelimit import TokenBucketLimiter

    now = [0.0]
    limiter = TokenBucketLimiter(rate=2.0, burst=2, clock=lambda: now[0], max_clients=2)
    assert limiter.acquire("a") == 0 and limiter.acquire("a") == 0
    assert limiter.acquire("a") == pytest.approx(0.5)
    now[0] += 0.5
    assert limiter.acquire("a") == 0
    limiter.acquire("b")
    limiter.acquire("c")  # evicts "a" (least recently used)
    assert len(limiter._buckets) == 2


def test_body_limit_413() -> None:
    client = make_client(token_max_body_bytes=1024)
    big = b'{"participant_metadata": "' + b"x" * 2000 + b'"}'
    response = client.post("/token", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"


def test_body_limit_413_without_content_length() -> None:
    client = make_client(token_max_body_bytes=1024)

    def chunks():  # type: ignore[no-untyped-def]  # streamed: no Content-Length header
        for _ in range(10):
            yield b"x" * 200

    response = client.post("/token", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413


# -- CORS ------------------------------------------------------------------------------


def test_same_origin_default_sends_no_cors_headers() -> None:
    client = make_client()
    response = client.post("/token", json={}, headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in response.headers


def test_cors_allow_list() -> None:
    client = make_client(cors_origins="https://app.example")
    preflight = client.options(
        "/token",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,authorization",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    allowed = client.post("/token", json={}, headers={"Origin": "https://app.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    other = client.post("/token", json={}, headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    bad_preflight = client.options(
        "/token",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert bad_preflight.status_code == 400


# -- startup checks ----------------------------------------------------------------------


def test_short_secret_refused_outside_dev_mode() -> None:
    with pytest.raises(StartupError, match="shorter than 32"):
        make_app(livekit_api_secret="short-but-not-a-dev-secret")
    make_app(livekit_api_secret="short-but-not-a-dev-secret", dev_mode=True)


def test_missing_key_or_secret_refused() -> None:
    with pytest.raises(StartupError, match="LIVEKIT_API_KEY and LIVEKIT_API_SECRET"):
        make_app(livekit_api_key=None)
    with pytest.raises(StartupError, match="LIVEKIT_API_KEY and LIVEKIT_API_SECRET"):
        make_app(livekit_api_secret=None)


def test_default_agent_must_be_allowed() -> None:
    with pytest.raises(StartupError, match="KAIWA_ALLOWED_AGENT_NAMES"):
        make_app(agent_name="kaiwa", allowed_agent_names="other")


def test_bad_livekit_url_refused() -> None:
    with pytest.raises(StartupError, match="LIVEKIT_URL"):
        check_settings(make_settings(livekit_url="localhost:7880"))


def _run_main(env_overrides: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAIWA_", "LIVEKIT_"))}
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "-m", "token_server", "--port", "1"],
        cwd=tmp_path,  # no .env there
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_main_exits_with_one_line_on_short_secret(tmp_path: Path) -> None:
    result = _run_main({"LIVEKIT_API_KEY": "k", "LIVEKIT_API_SECRET": "short"}, tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "shorter than 32" in lines[0], result.stderr
    assert "short" not in lines[0].replace("shorter", "")  # the secret itself is not printed


def test_main_exits_with_one_line_on_missing_secret(tmp_path: Path) -> None:
    # unset means the local dev keys; an explicitly empty value is a mistake
    result = _run_main({"LIVEKIT_API_SECRET": ""}, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "token_server: LIVEKIT_API_KEY and LIVEKIT_API_SECRET must be set (environment or .env)"
    ]


# -- the secret never leaks --------------------------------------------------------------


def test_secret_never_in_responses_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(token_auth="bearer", token_bearer_keys="bearer-secret-key")
    auth = {"Authorization": "Bearer bearer-secret-key"}
    bodies = []
    for method, path, kwargs in [
        ("POST", "/token", {"json": {}, "headers": auth}),
        ("POST", "/token", {"json": {"room_config": {"egress": {}}}, "headers": auth}),
        ("POST", "/token", {"content": b"{", "headers": auth}),
        ("POST", "/token", {"json": {}}),
        ("GET", "/api/connection-details", {"headers": auth}),
        ("GET", "/metrics", {}),
        ("GET", "/openapi.json", {}),
        ("GET", "/readyz", {}),
        ("POST", "/livekit/webhook", {"content": b"{}", "headers": {"Authorization": "x"}}),
    ]:
        response = client.request(method, path, **kwargs)
        bodies.append(response.text + str(response.headers))
    token = client.post("/token", json={}, headers=auth).json()["participant_token"]
    everything = "\n".join(bodies) + caplog.text
    assert API_SECRET not in everything
    assert API_SECRET not in repr(make_settings())
    assert "bearer-secret-key" not in caplog.text
    assert token not in caplog.text
    # One structured access line per request, without query strings.
    client.get("/healthz?token=abc")
    access = [r.getMessage() for r in caplog.records if r.name == "token_server.access"]
    assert access and '"path": "/healthz"' in access[-1] and "abc" not in access[-1]
    assert '"status": 200' in access[-1] and '"duration_ms"' in access[-1]


def test_internal_errors_are_json_without_traceback(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from token_server import tokens

    def boom(self: object, decision: object) -> str:
        raise RuntimeError("kaboom " + API_SECRET)

    monkeypatch.setattr(tokens.TokenMinter, "mint", boom)
    response = make_client().post("/token", json={})
    assert response.status_code == 500
    assert response.json() == {"error": "internal_error", "detail": "unexpected server error"}
    assert "Traceback" not in response.text and API_SECRET not in response.text
    assert "RuntimeError" in caplog.text and API_SECRET not in caplog.text


# -- webhook ---------------------------------------------------------------------------


def _signed(body: str, secret: str = API_SECRET) -> str:
    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    return api.AccessToken(API_KEY, secret).with_sha256(digest).to_jwt()


def test_webhook_counts_rooms_and_participants() -> None:
    client = make_client()
    events = [
        '{"event": "room_started", "room": {"sid": "RM_1", "name": "kaiwa-a"}}',
        '{"event": "participant_joined", "room": {"sid": "RM_1"}, "participant": {"sid": "PA_1"}}',
        '{"event": "participant_joined", "room": {"sid": "RM_1"}, "participant": {"sid": "PA_2"}}',
        '{"event": "participant_left", "room": {"sid": "RM_1"}, "participant": {"sid": "PA_1"}}',
    ]
    for body in events:
        response = client.post(
            "/livekit/webhook",
            content=body,
            headers={"Authorization": _signed(body), "content-type": "application/webhook+json"},
        )
        assert response.status_code == 200, response.text
    text = client.get("/metrics").text
    assert "kaiwa_livekit_rooms 1.0" in text
    assert "kaiwa_livekit_participants 1.0" in text
    body = '{"event": "room_finished", "room": {"sid": "RM_1"}}'
    client.post("/livekit/webhook", content=body, headers={"Authorization": _signed(body)})
    assert "kaiwa_livekit_rooms 0.0" in client.get("/metrics").text


def test_webhook_bad_signature_401() -> None:
    client = make_client()
    body = '{"event": "room_started", "room": {"sid": "RM_1"}}'
    for auth in ("", "garbage", _signed(body, secret="y" * 40), _signed(body + " ")):
        response = client.post("/livekit/webhook", content=body, headers={"Authorization": auth})
        assert response.status_code == 401, auth
        assert response.json()["error"] == "invalid_signature"
    assert "kaiwa_livekit_rooms 0.0" in client.get("/metrics").text

"""CORS for LiveKit's own browser clients on another origin (KAIWA_CORS_ORIGINS).

agent-starter-react sends `X-Sandbox-Id` (and Content-Type) to its connection-details
endpoint; TokenSource.endpoint sends Content-Type plus the headers the app configures
(Authorization for bearer auth). Content-Type application/json and any custom header make
the browser ask first (preflight), so the preflight must allow exactly these.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.unit.test_token_helpers import make_client, raw_claims

APP = "https://app.example"


def _preflight(client: TestClient, path: str, origin: str, headers: str) -> Any:
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": headers,
        },
    )


@pytest.mark.parametrize("path", ["/token", "/api/connection-details"])
def test_agent_starter_react_preflight_and_request(path: str) -> None:
    client = make_client(cors_origins=APP)
    preflight = client.options(
        path,
        headers={
            "Origin": APP,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-sandbox-id,content-type",
        },
    )
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["access-control-allow-origin"] == APP
    allowed = {
        h.strip().lower() for h in preflight.headers["access-control-allow-headers"].split(",")
    }
    assert {"x-sandbox-id", "content-type"} <= allowed
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "access-control-allow-credentials" not in preflight.headers  # header auth only

    # The request the browser then makes (the starter sends an empty sandbox id locally).
    response = client.post(
        path,
        json={"room_config": {"agents": [{"agent_name": "kaiwa"}]}},
        headers={
            "Origin": APP,
            "X-Sandbox-Id": "",
            "Sec-Fetch-Site": "cross-site",
        },
    )
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == APP
    body = response.json()
    token = body.get("participant_token") or body["participantToken"]
    assert raw_claims(token)["attributes"]["kaiwa.channel"] == "livekit-client"


def test_token_source_endpoint_with_bearer_auth() -> None:
    client = make_client(cors_origins=APP, token_auth="bearer", token_bearer_keys="app-key")
    preflight = _preflight(client, "/token", APP, "authorization,content-type,x-sandbox-id,accept")
    assert preflight.status_code == 200
    response = client.post(
        "/token",
        json={"participant_name": "Ada"},
        headers={"Origin": APP, "Authorization": "Bearer app-key"},
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == APP


def test_origin_allow_list_still_applies() -> None:
    client = make_client(cors_origins=APP)
    evil = _preflight(client, "/token", "https://evil.example", "x-sandbox-id,content-type")
    assert evil.status_code == 400
    assert "access-control-allow-origin" not in evil.headers
    posted = client.post("/token", json={}, headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in posted.headers


def test_other_headers_are_not_allowed_cross_origin() -> None:
    # Notably the proxy identity header: a page elsewhere has no business sending it.
    client = make_client(cors_origins=APP)
    for header in ("x-forwarded-user", "x-forwarded-for", "cookie-ish"):
        refused = _preflight(client, "/token", APP, f"content-type,{header}")
        assert refused.status_code == 400, header


def test_no_cors_origins_means_no_cors() -> None:
    preflight = _preflight(make_client(), "/token", APP, "x-sandbox-id,content-type")
    assert "access-control-allow-origin" not in preflight.headers

"""POST /token and /api/connection-details: SDK request/response shapes and JWT contents."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.unit.test_token_helpers import make_client, raw_claims, verify

SNAKE_KEYS = {"server_url", "participant_token", "room_name", "participant_name"}


def _agents(token: str) -> list[dict[str, Any]]:
    return list(raw_claims(token)["roomConfig"]["agents"])


@pytest.mark.parametrize(
    ("sdk", "body"),
    [
        # JS TokenSource.endpoint (also React Native): snake_case, agent in room_config.
        ("js", {"participant_name": "Ada", "room_config": {"agents": [{"agent_name": "kaiwa"}]}}),
        # Swift / Android / Flutter EndpointTokenSource: snake_case, same keys.
        ("swift", {"room_config": {"agents": [{"agent_name": "kaiwa"}]}}),
        ("android", {"participant_name": "Ada", "participant_metadata": "m"}),
        # Hand-written clients may send proto defaults (empty strings): same as absent.
        (
            "flutter",
            {
                "room_config": {
                    "agents": [{"agent_name": "kaiwa", "metadata": "", "deployment": ""}]
                }
            },
        ),
        # camelCase fallback (protobuf JSON readers accept both).
        ("camel", {"participantName": "Ada", "roomConfig": {"agents": [{"agentName": "kaiwa"}]}}),
        ("empty-object", {}),
    ],
)
def test_sdk_request_shapes_get_snake_case_200(sdk: str, body: dict[str, Any]) -> None:
    client = make_client()
    response = client.post("/token", json=body)
    assert response.status_code == 200, response.text  # not 201: old Flutter needs 200
    data = response.json()
    assert set(data) == SNAKE_KEYS | {"participant_identity"}
    assert data["server_url"] == "ws://127.0.0.1:1"
    assert response.headers["cache-control"] == "no-store"
    claims = verify(data["participant_token"])
    assert claims.identity == data["participant_identity"]
    assert claims.video is not None and claims.video.room == data["room_name"]
    assert (
        _agents(data["participant_token"])
        and _agents(data["participant_token"])[0]["agentName"] == "kaiwa"
    )
    if body.get("participant_name") or body.get("participantName"):
        assert data["participant_name"] == "Ada" == claims.name


@pytest.mark.parametrize("content", [b"", b"   "])
def test_empty_body_is_all_defaults(content: bytes) -> None:
    client = make_client()
    # Some clients send no Content-Type with an empty body.
    response = client.post("/token", content=content)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["room_name"].startswith("kaiwa-")
    assert data["participant_identity"].startswith("user-")
    assert data["participant_name"] == data["participant_identity"]


def test_jwt_grants_exactly_as_intended() -> None:
    client = make_client(token_ttl_seconds=600)
    data = client.post(
        "/token",
        json={
            "participant_name": "Ada",
            "participant_metadata": "meta",
            "participant_attributes": {"lang": "en", "plan": "free"},
            "room_config": {"agents": [{"agent_name": "kaiwa"}]},
        },
    ).json()
    claims = raw_claims(data["participant_token"])
    assert claims["video"] == {
        "roomJoin": True,
        "room": data["room_name"],
        "canPublish": True,
        "canSubscribe": True,
        "canPublishData": True,
        "canPublishSources": ["microphone", "camera", "screen_share", "screen_share_audio"],
    }
    assert claims["roomConfig"] == {"agents": [{"agentName": "kaiwa"}]}
    assert claims["sub"] == data["participant_identity"]
    assert claims["name"] == "Ada"
    assert claims["metadata"] == "meta"
    assert claims["attributes"] == {
        "lang": "en",
        "plan": "free",
        "kaiwa.role": "caller",
        "kaiwa.channel": "livekit-client",
    }
    assert claims["kind"] == "standard"
    assert claims["exp"] - claims["nbf"] == 600
    for forbidden in ("roomAdmin", "roomCreate", "roomList", "roomRecord", "canUpdateOwnMetadata"):
        assert forbidden not in claims["video"]
    # Only the video grant: no SIP/agent/inference/observability grants.
    assert set(claims) <= {
        "name", "kind", "video", "roomConfig", "sub", "iss", "nbf", "exp", "metadata", "attributes"
    }  # fmt: skip


def test_ttl_is_capped() -> None:
    client = make_client(token_ttl_seconds=7200, token_max_ttl_seconds=1800)
    claims = raw_claims(client.post("/token", json={}).json()["participant_token"])
    assert claims["exp"] - claims["nbf"] == 1800


def test_every_request_gets_a_fresh_room_and_identity() -> None:
    client = make_client()
    first = client.post("/token", json={}).json()
    second = client.post("/token", json={}).json()
    assert first["room_name"] != second["room_name"]
    assert first["participant_identity"] != second["participant_identity"]


def test_default_agent_dispatched_when_client_names_none() -> None:
    client = make_client(agent_name="helper", allowed_agent_names=["helper", "other"])
    for body in ({}, {"room_config": {}}, {"room_config": {"agents": []}}):
        token = client.post("/token", json=body).json()["participant_token"]
        assert _agents(token) == [{"agentName": "helper"}]
    token = client.post(
        "/token", json={"room_config": {"agents": [{"agent_name": "other"}]}}
    ).json()["participant_token"]
    assert _agents(token) == [{"agentName": "other"}]


def test_public_livekit_url_is_what_clients_get() -> None:
    client = make_client(public_livekit_url="wss://rtc.example.com")
    assert client.post("/token", json={}).json()["server_url"] == "wss://rtc.example.com"


def test_client_room_and_identity_when_allowed() -> None:
    client = make_client(allow_client_room_names=True, allow_client_identities=True)
    data = client.post(
        "/token", json={"room_name": "team.room-1", "participant_identity": "ada@example.com"}
    ).json()
    assert data["room_name"] == "team.room-1"
    assert data["participant_identity"] == "ada@example.com"
    video = verify(data["participant_token"]).video
    assert video is not None and video.room == "team.room-1"


# -- refusals --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"room_config": {"agents": [{"agent_name": "other-agent"}]}}, 403, "agent_not_allowed"),
        ({"roomConfig": {"agents": [{"agentName": "other-agent"}]}}, 403, "agent_not_allowed"),
        ({"room_config": {"egress": {"room": {}}}}, 403, "room_config_field_not_allowed"),
        ({"room_config": {"empty_timeout": 5}}, 403, "room_config_field_not_allowed"),
        ({"room_config": {"max_participants": 100}}, 403, "room_config_field_not_allowed"),
        ({"room_config": {"min_participants": 2}}, 403, "room_config_field_not_allowed"),
        ({"room_config": {"metadata": "x"}}, 403, "room_config_field_not_allowed"),
        ({"room_config": {"sync_streams": True}}, 403, "room_config_field_not_allowed"),
        ({"room_config": {"surprise": 1}}, 403, "room_config_field_not_allowed"),
        (
            {"room_config": {"agents": [{"agent_name": "kaiwa", "restart_policy": 1}]}},
            403,
            "room_config_field_not_allowed",
        ),
        (
            {"room_config": {"agents": [{"agent_name": "kaiwa"}, {"agent_name": "kaiwa"}]}},
            400,
            "too_many_agents",
        ),
        ({"room_name": "my-room"}, 403, "room_name_not_allowed"),
        ({"participant_identity": "admin"}, 403, "identity_not_allowed"),
        ({"participant_metadata": "x" * 5000}, 400, "metadata_too_large"),
        ({"participant_name": "n" * 500}, 400, "participant_name_too_long"),
        # Agent dispatch metadata becomes the job's metadata: the server's alone.
        (
            {"room_config": {"agents": [{"agent_name": "kaiwa", "metadata": "m" * 5000}]}},
            403,
            "room_config_field_not_allowed",
        ),
        (
            {"room_config": {"agents": [{"agent_name": "kaiwa", "metadata": '{"x": 1}'}]}},
            403,
            "room_config_field_not_allowed",
        ),
        (
            {"roomConfig": {"agents": [{"agentName": "kaiwa", "metadata": "m"}]}},
            403,
            "room_config_field_not_allowed",
        ),
        (
            {"room_config": {"agents": [{"metadata": '{"kaiwa_recovery": {}}'}]}},
            403,
            "room_config_field_not_allowed",
        ),
        (
            {"room_config": {"agents": [{"agent_name": "kaiwa", "deployment": "prod"}]}},
            403,
            "room_config_field_not_allowed",
        ),
        (
            {"room_config": {"agents": [{"agent_name": "kaiwa", "attributes": {"a": "b"}}]}},
            403,
            "room_config_field_not_allowed",
        ),
        (
            {"participant_attributes": {f"k{i}": "v" for i in range(17)}},
            400,
            "attributes_too_large",
        ),
        ({"participant_attributes": {"k": "v" * 2000}}, 400, "attributes_too_large"),
        (
            {"participant_attributes": {f"k{i}": "é" * 1000 for i in range(6)}},
            400,
            "attributes_too_large",
        ),
        ({"participant_attributes": {"lk.agent.state": "idle"}}, 403, "reserved_attribute"),
        ({"participant_attributes": {"kaiwa.role": "staff"}}, 403, "reserved_attribute"),
        ({"participant_attributes": {"kaiwa.channel": "web"}}, 403, "reserved_attribute"),
        ({"participant_attributes": {"KAIWA.Role": "staff"}}, 403, "reserved_attribute"),
        ({"participantAttributes": {"kaiwa.anything": "x"}}, 403, "reserved_attribute"),
        ({"participant_attributes": {"bad key": "v"}}, 400, "invalid_attribute_key"),
        ({"room_name": 5}, 400, "invalid_request"),
        ({"participant_attributes": {"a": 1}}, 400, "invalid_request"),
        ({"participant_attributes": ["a"]}, 400, "invalid_request"),
        ({"room_config": "kaiwa"}, 400, "invalid_request"),
        ({"room_config": {"agents": {"agent_name": "kaiwa"}}}, 400, "invalid_request"),
        ({"participant_name": True}, 400, "invalid_request"),
    ],
)
def test_refusals_are_4xx_json_with_code(body: dict[str, Any], status: int, code: str) -> None:
    response = make_client().post("/token", json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"] == code
    assert isinstance(response.json()["detail"], str) and response.json()["detail"]
    assert "participant_token" not in response.text


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"room_name": "has space"}, "invalid_room_name"),
        ({"room_name": "r" * 65}, "invalid_room_name"),
        ({"room_name": "../etc"}, "invalid_room_name"),
        ({"participant_identity": "x" * 200}, "invalid_identity"),
        ({"participant_identity": "a b"}, "invalid_identity"),
    ],
)
def test_client_chosen_names_are_validated(body: dict[str, Any], code: str) -> None:
    client = make_client(allow_client_room_names=True, allow_client_identities=True)
    response = client.post("/token", json=body)
    assert response.status_code == 400 and response.json()["error"] == code


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b"{", "application/json", 400, "invalid_json"),
        (b'{"room_name": }', "application/json", 400, "invalid_json"),
        (b"\xff\xfe\xfa", "application/json", 400, "invalid_json"),
        (b"[" * 5000 + b"]" * 5000, "application/json", 400, "invalid_json"),
        (b"[]", "application/json", 400, "invalid_request"),
        (b'"kaiwa"', "application/json", 400, "invalid_request"),
        (b"42", "application/json", 400, "invalid_request"),
        (b"null", "application/json", 400, "invalid_request"),
        (b"room_name=x", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (b"{}", "text/plain", 415, "unsupported_media_type"),
    ],
)
def test_malformed_bodies(content: bytes, content_type: str, status: int, code: str) -> None:
    response = make_client().post("/token", content=content, headers={"content-type": content_type})
    assert response.status_code == status, response.text
    assert response.json() == {"error": code, "detail": response.json()["detail"]}


def test_validation_detail_does_not_echo_values() -> None:
    secretish = "do-not-echo-" + "z" * 20
    response = make_client().post("/token", json={"participant_attributes": {"k": [secretish]}})
    assert response.status_code == 400
    assert secretish not in response.text


def test_unknown_top_level_fields_are_ignored() -> None:
    # Newer SDKs may add TokenSourceRequest fields; they must not break older servers.
    response = make_client().post("/token", json={"future_field": {"x": 1}})
    assert response.status_code == 200


def test_unknown_paths_and_methods_are_json() -> None:
    client = make_client()
    missing = client.get("/nope")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    wrong = client.put("/token", json={})
    assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"
    assert wrong.headers["allow"] == "POST"


# -- older agent-starter-react endpoint ------------------------------------------------


def test_connection_details_post_shape() -> None:
    client = make_client()
    response = client.post(
        "/api/connection-details", json={"room_config": {"agents": [{"agent_name": "kaiwa"}]}}
    )
    assert response.status_code == 200
    data = response.json()
    assert set(data) == {"serverUrl", "roomName", "participantName", "participantToken"}
    assert response.headers["cache-control"] == "no-store"
    claims = verify(data["participantToken"])
    assert claims.video is not None and claims.video.room == data["roomName"]
    assert _agents(data["participantToken"]) == [{"agentName": "kaiwa"}]


def test_connection_details_get_and_refusal() -> None:
    client = make_client()
    data = client.get("/api/connection-details").json()
    assert _agents(data["participantToken"]) == [{"agentName": "kaiwa"}]
    refused = client.post(
        "/api/connection-details", json={"room_config": {"agents": [{"agent_name": "x"}]}}
    )
    assert refused.status_code == 403 and refused.json()["error"] == "agent_not_allowed"


# -- web page --------------------------------------------------------------------------


def test_root_without_build_explains_make_web() -> None:
    response = make_client().get("/")
    assert response.status_code == 200
    assert "make web" in response.text
    assert response.headers["content-type"].startswith("text/html")


def test_static_web_does_not_shadow_api(tmp_path: Any) -> None:
    (tmp_path / "index.html").write_text("<html>kaiwa page</html>")
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "app.js").write_text("console.log(1)")
    client = make_client(web_dir=str(tmp_path))
    assert "kaiwa page" in client.get("/").text
    assert client.get("/assets/app.js").text == "console.log(1)"
    assert client.post("/token", json={}).status_code == 200
    assert client.get("/healthz").json() == {"status": "ok"}
    missing = client.get("/assets/nope.js")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    assert json.loads(client.get("/openapi.json").text)["paths"]["/token"]

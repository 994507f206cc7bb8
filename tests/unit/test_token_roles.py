"""Who is talking: kaiwa.role / kaiwa.channel are decided by the server and signed."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.test_token_helpers import make_client, raw_claims
from token_server.auth import BearerKey, parse_bearer_keys
from token_server.roles import (
    CHANNEL_ATTRIBUTE,
    ROLE_ATTRIBUTE,
    TURN_MODE_ATTRIBUTE,
    Role,
    role_of,
)
from token_server.startup import StartupError

PROXY = {"token_auth": "proxy", "token_proxy_header": "X-Auth-User"}


def _attributes(response: Any) -> dict[str, str]:
    assert response.status_code == 200, response.text
    return dict(raw_claims(response.json()["participant_token"])["attributes"])


def test_open_mode_is_always_caller() -> None:
    client = make_client(staff_identities="alice", allow_client_identities=True)
    attributes = _attributes(client.post("/token", json={}))
    assert attributes == {ROLE_ATTRIBUTE: "caller", CHANNEL_ATTRIBUTE: "livekit-client"}
    # Claiming a staff member's name is not authenticating as them.
    claimed = client.post("/token", json={"participant_identity": "alice"})
    assert claimed.json()["participant_identity"] == "alice"
    assert _attributes(claimed)[ROLE_ATTRIBUTE] == "caller"


def test_proxy_user_on_the_staff_list_is_staff() -> None:
    client = make_client(staff_identities="alice, bob@example.com", **PROXY)
    for user in ("alice", "bob@example.com"):
        response = client.post("/token", json={}, headers={"X-Auth-User": user})
        assert _attributes(response)[ROLE_ATTRIBUTE] == "staff"
        assert raw_claims(response.json()["participant_token"])["sub"] == user
    for user in ("carol", "Alice", "alice2"):  # exact match only
        response = client.post("/token", json={}, headers={"X-Auth-User": user})
        assert _attributes(response)[ROLE_ATTRIBUTE] == "caller"


def test_bearer_key_options() -> None:
    keys = "kiosk-key, alice-key identity=alice, desk-key staff, boss-key identity=boss staff"
    client = make_client(token_auth="bearer", token_bearer_keys=keys, staff_identities="alice")

    def post(key: str, body: dict[str, Any] | None = None) -> Any:
        return client.post("/token", json=body or {}, headers={"Authorization": f"Bearer {key}"})

    kiosk = post("kiosk-key")  # the old format: a plain key, generated identity, caller
    assert kiosk.json()["participant_identity"].startswith("user-")
    assert _attributes(kiosk)[ROLE_ATTRIBUTE] == "caller"

    alice = post("alice-key")  # fixed identity on the staff list
    assert alice.json()["participant_identity"] == "alice"
    assert _attributes(alice)[ROLE_ATTRIBUTE] == "staff"
    other = post("alice-key", {"participant_identity": "mallory"})
    assert other.status_code == 403 and other.json()["error"] == "identity_not_allowed"

    desk = post("desk-key")  # marked staff, identity generated per request
    assert desk.json()["participant_identity"].startswith("user-")
    assert _attributes(desk)[ROLE_ATTRIBUTE] == "staff"

    boss = post("boss-key")  # marked staff with a fixed identity not on the list
    assert boss.json()["participant_identity"] == "boss"
    assert _attributes(boss)[ROLE_ATTRIBUTE] == "staff"


def test_client_cannot_set_or_override_kaiwa_attributes() -> None:
    client = make_client(**PROXY, staff_identities="alice")
    headers = {"X-Auth-User": "mallory"}
    for key in ("kaiwa.role", "kaiwa.channel", "Kaiwa.Role", "kaiwa.other", "lk.agent.state"):
        response = client.post(
            "/token", json={"participant_attributes": {key: "staff"}}, headers=headers
        )
        assert response.status_code == 403, key
        assert response.json() == {
            "error": "reserved_attribute",
            "detail": response.json()["detail"],
        }
    # Other attributes pass through next to the server's.
    response = client.post(
        "/token", json={"participant_attributes": {"lang": "ja"}}, headers=headers
    )
    claims = raw_claims(response.json()["participant_token"])
    assert claims["attributes"] == {
        "lang": "ja",
        ROLE_ATTRIBUTE: "caller",
        CHANNEL_ATTRIBUTE: "livekit-client",
    }
    # Nor can a participant rewrite them after joining.
    assert "canUpdateOwnMetadata" not in claims["video"]


@pytest.mark.parametrize(
    ("headers", "channel"),
    [
        ({"Sec-Fetch-Site": "same-origin"}, "web"),
        ({"Sec-Fetch-Site": "cross-site", "Origin": "https://app.example"}, "livekit-client"),
        ({"Sec-Fetch-Site": "same-site"}, "livekit-client"),
        ({"Origin": "http://testserver"}, "web"),  # older browsers: Origin == Host
        ({"Origin": "https://elsewhere.example"}, "livekit-client"),
        ({}, "livekit-client"),  # SDK apps, curl
    ],
)
def test_channel(headers: dict[str, str], channel: str) -> None:
    response = make_client().post("/token", json={}, headers=headers)
    assert _attributes(response)[CHANNEL_ATTRIBUTE] == channel


def test_connection_details_routes_sign_the_role_too() -> None:
    client = make_client(**PROXY, staff_identities="alice")
    headers = {"X-Auth-User": "alice"}
    for response in (
        client.get("/api/connection-details", headers=headers),
        client.post("/api/connection-details", json={}, headers=headers),
    ):
        assert response.status_code == 200, response.text
        claims = raw_claims(response.json()["participantToken"])
        assert claims["attributes"][ROLE_ATTRIBUTE] == "staff"


def test_role_of_is_caller_unless_exactly_staff() -> None:
    assert role_of({ROLE_ATTRIBUTE: "staff"}) is Role.STAFF
    for attributes in (None, {}, {ROLE_ATTRIBUTE: "Staff"}, {ROLE_ATTRIBUTE: "admin"}):
        assert role_of(attributes) is Role.CALLER


# -- KAIWA_TOKEN_BEARER_KEYS format ---------------------------------------------------------


def test_bearer_key_format() -> None:
    assert parse_bearer_keys("") == []
    assert parse_bearer_keys("a, b ,,") == [BearerKey(b"a"), BearerKey(b"b")]
    assert parse_bearer_keys("k1 identity=ada@example.com staff, k2 staff identity=x:y") == [
        BearerKey(b"k1", "ada@example.com", True),
        BearerKey(b"k2", "x:y", True),
    ]
    # Base64 padding and RFC 6750 token characters stay part of the key.
    assert parse_bearer_keys("YWJj+/9-_.~==") == [BearerKey(b"YWJj+/9-_.~==")]
    assert "secret-key" not in repr(parse_bearer_keys("secret-key identity=a"))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("good-key, leaked-key typo", "entry 2: option 1"),
        ("k identity=", "entry 1: identity="),
        ("k identity=has/slash", "entry 1: identity="),
        ("k identity=a identity=b", "entry 1: option 2"),
        ("k role=staff", "entry 1: option 1"),
        ("same-key, same-key staff", "entry 2 repeats"),
    ],
)
def test_bad_bearer_key_settings_stop_the_server(value: str, message: str) -> None:
    with pytest.raises(StartupError, match=message) as refused:
        make_client(token_auth="bearer", token_bearer_keys=value)
    text = str(refused.value)
    for secretish in ("good-key", "leaked-key", "typo", "same-key"):
        assert secretish not in text


def test_bad_staff_identity_stops_the_server() -> None:
    with pytest.raises(StartupError, match="KAIWA_STAFF_IDENTITIES"):
        make_client(staff_identities="alice, not valid")


def test_push_to_talk_credentials_are_signed() -> None:
    """A counter with bystanders: its tokens say kaiwa.turn_mode=push_to_talk, from a bearer
    key marked `ptt` or a listed identity; nobody else's do, and no client can ask for it."""
    keys = "counter-key identity=counter-1 ptt, lobby-key identity=lobby, desk-key staff"
    client = make_client(token_auth="bearer", token_bearer_keys=keys, ptt_identities="lobby")

    def post(key: str, body: dict[str, Any] | None = None) -> Any:
        return client.post("/token", json=body or {}, headers={"Authorization": f"Bearer {key}"})

    for key in ("counter-key", "lobby-key"):
        attributes = _attributes(post(key))
        assert attributes[TURN_MODE_ATTRIBUTE] == "push_to_talk"
        assert attributes[ROLE_ATTRIBUTE] == "caller"
    assert TURN_MODE_ATTRIBUTE not in _attributes(post("desk-key"))
    asked = post("desk-key", {"participant_attributes": {TURN_MODE_ATTRIBUTE: "push_to_talk"}})
    assert asked.status_code == 403, asked.text
    assert parse_bearer_keys("k ptt staff") == [BearerKey(b"k", None, True, True)]
    with pytest.raises(StartupError, match="KAIWA_PTT_IDENTITIES"):
        make_client(ptt_identities="not valid")

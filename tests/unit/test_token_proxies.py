"""Proxy mode and X-Forwarded-For: believed only from KAIWA_TRUSTED_PROXIES."""

from __future__ import annotations

import logging
import re

import pytest

from tests.unit.test_token_helpers import make_app, make_client
from token_server.proxies import TrustedProxies
from token_server.startup import StartupError

PROXY = {"token_auth": "proxy", "token_proxy_header": "X-Auth-User"}
OUTSIDER = ("203.0.113.9", 41000)


# -- the address rules ----------------------------------------------------------------------


def test_default_trusts_loopback_only() -> None:
    proxies = TrustedProxies()
    assert not proxies.explicit
    for peer in ("127.0.0.1", "127.8.9.1", "::1", "::ffff:127.0.0.1"):
        assert proxies.is_trusted(peer), peer
    for peer in ("10.0.0.1", "203.0.113.9", "testclient", "", None, "localhost"):
        assert not proxies.is_trusted(peer), peer


def test_explicit_list_replaces_the_default() -> None:
    proxies = TrustedProxies(["10.0.0.0/8", " 2001:db8::1 ", ""])
    assert proxies.explicit
    assert proxies.is_trusted("10.20.30.40") and proxies.is_trusted("2001:db8::1")
    assert not proxies.is_trusted("127.0.0.1") and not proxies.is_trusted("11.0.0.1")


def test_bad_entry_is_named() -> None:
    with pytest.raises(ValueError, match=re.escape("'10.0.0.300'")):
        TrustedProxies(["10.0.0.1", "10.0.0.300"])


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("127.0.0.1", [], "127.0.0.1"),
        ("127.0.0.1", ["198.51.100.7"], "198.51.100.7"),
        # The client's own X-Forwarded-For claim sits left of what our proxy appended.
        ("127.0.0.1", ["1.2.3.4, 198.51.100.7"], "198.51.100.7"),
        ("127.0.0.1", ["1.2.3.4", "198.51.100.7"], "198.51.100.7"),  # repeated header
        ("127.0.0.1", ["198.51.100.7, 127.0.0.1"], "198.51.100.7"),  # two local hops
        ("127.0.0.1", ["garbage, 198.51.100.7"], "198.51.100.7"),
        ("127.0.0.1", ["127.0.0.2, garbage"], "127.0.0.1"),  # unreadable: keep the peer
        ("127.0.0.1", ["[2001:db8::5]:4711"], "2001:db8::5"),
        # Not from a trusted proxy: the header is the client's own claim, ignored.
        ("203.0.113.9", ["198.51.100.7"], "203.0.113.9"),
        (None, ["198.51.100.7"], "unknown"),
    ],
)
def test_client_ip(peer: str | None, forwarded: list[str], client: str) -> None:
    assert TrustedProxies().client_ip(peer, forwarded) == client


# -- startup --------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "proxy.internal"])
def test_proxy_mode_on_public_bind_needs_trusted_proxies(host: str) -> None:
    with pytest.raises(StartupError, match="KAIWA_TRUSTED_PROXIES") as refused:
        make_app(token_host=host, **PROXY)
    assert "X-Auth-User" in str(refused.value)
    make_app(token_host=host, trusted_proxies="10.0.0.5, 10.1.0.0/16", **PROXY)


def test_proxy_mode_on_loopback_trusts_a_local_proxy() -> None:
    make_app(token_host="127.0.0.1", **PROXY)


def test_bad_trusted_proxy_stops_the_server() -> None:
    with pytest.raises(StartupError, match="KAIWA_TRUSTED_PROXIES: 'nginx'"):
        make_app(trusted_proxies="nginx")


# -- the identity header ----------------------------------------------------------------------


def test_identity_header_only_from_a_trusted_proxy() -> None:
    headers = {"X-Auth-User": "alice"}
    local = make_client(**PROXY).post("/token", json={}, headers=headers)
    assert local.status_code == 200 and local.json()["participant_identity"] == "alice"

    direct = make_client(peer=OUTSIDER, **PROXY).post("/token", json={}, headers=headers)
    assert direct.status_code == 401
    assert direct.json() == {
        "error": "unauthorized",
        "detail": "requests must come through the trusted proxy",
    }
    assert "participant_token" not in direct.text


def test_named_proxies_only() -> None:
    settings = {"trusted_proxies": "10.0.0.5", "token_host": "0.0.0.0", **PROXY}
    headers = {"X-Auth-User": "alice"}
    via_proxy = make_client(peer=("10.0.0.5", 1), **settings)
    assert via_proxy.post("/token", json={}, headers=headers).status_code == 200
    for peer in (("10.0.0.6", 1), ("127.0.0.1", 1)):  # naming proxies drops the default
        other = make_client(peer=peer, **settings)
        assert other.post("/token", json={}, headers=headers).status_code == 401, peer


# -- rate limit keys ----------------------------------------------------------------------------


def test_rate_limit_keys_on_forwarded_client_behind_a_trusted_proxy() -> None:
    client = make_client(token_rate=0.01, token_burst=1)  # peer 127.0.0.1: trusted
    first = {"X-Forwarded-For": "198.51.100.1"}
    second = {"X-Forwarded-For": "198.51.100.2"}
    assert client.post("/token", json={}, headers=first).status_code == 200
    assert client.post("/token", json={}, headers=first).status_code == 429
    assert client.post("/token", json={}, headers=second).status_code == 200
    # Spoofing a different origin in front of the proxy's entry changes nothing.
    spoof = {"X-Forwarded-For": "1.1.1.1, 198.51.100.1"}
    assert client.post("/token", json={}, headers=spoof).status_code == 429


def test_rate_limit_ignores_forwarded_for_from_untrusted_peers() -> None:
    client = make_client(peer=OUTSIDER, token_rate=0.01, token_burst=1, token_force_open=True)
    assert (
        client.post("/token", json={}, headers={"X-Forwarded-For": "198.51.100.1"}).status_code
        == 200
    )
    # A new X-Forwarded-For per request does not buy a new bucket.
    for n in range(2, 5):
        spoof = {"X-Forwarded-For": f"198.51.100.{n}"}
        assert client.post("/token", json={}, headers=spoof).status_code == 429


def test_access_log_shows_the_client_the_limiter_saw(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="token_server.access")
    make_client().get("/healthz", headers={"X-Forwarded-For": "198.51.100.1"})
    make_client(peer=OUTSIDER).get("/healthz", headers={"X-Forwarded-For": "198.51.100.1"})
    lines = [r.getMessage() for r in caplog.records if r.name == "token_server.access"]
    assert '"client": "198.51.100.1"' in lines[0]
    assert '"client": "203.0.113.9"' in lines[1]

"""Health, readiness and metrics routes."""

from __future__ import annotations

from tests.unit.test_token_helpers import make_client


def test_healthz() -> None:
    response = make_client().get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_ok_with_reachable_livekit() -> None:
    response = make_client().get("/readyz")  # probe stubbed as reachable
    assert response.status_code == 200 and response.json() == {"status": "ready"}


def test_readyz_503_when_livekit_unreachable() -> None:
    # The real probe against a port nothing listens on (connection refused, no network).
    with make_client(probe=None, livekit_url="ws://127.0.0.1:1") as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["error"] == "livekit_unreachable"
    assert "http://127.0.0.1:1/" in body["detail"]


def test_probe_url_conversion() -> None:
    from token_server.readiness import probe_url

    assert probe_url("ws://127.0.0.1:7880") == "http://127.0.0.1:7880/"
    assert probe_url("wss://rtc.example.com/rtc?x=1") == "https://rtc.example.com/"
    assert probe_url("https://rtc.example.com") == "https://rtc.example.com/"


def test_metrics_count_requests_refusals_and_latency() -> None:
    client = make_client()
    client.post("/token", json={})
    client.post("/token", json={"room_config": {"agents": [{"agent_name": "nope"}]}})
    client.post("/token", content=b"{", headers={"content-type": "application/json"})
    client.get("/no-such-page")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'kaiwa_token_http_requests_total{method="POST",route="/token",status="200"} 1.0' in text
    assert 'kaiwa_token_http_requests_total{method="POST",route="/token",status="403"} 1.0' in text
    assert 'kaiwa_token_refusals_total{reason="agent_not_allowed"} 1.0' in text
    assert 'kaiwa_token_refusals_total{reason="invalid_json"} 1.0' in text
    assert 'route="unmatched",status="404"' in text
    assert 'kaiwa_token_http_request_duration_seconds_count{route="/token"} 3.0' in text
    assert 'kaiwa_tokens_issued_total{agent="kaiwa"} 1.0' in text


def test_each_app_has_its_own_registry() -> None:
    first, second = make_client(), make_client()
    first.post("/token", json={})
    assert "kaiwa_tokens_issued_total{" not in second.get("/metrics").text
    assert "kaiwa_tokens_issued_total{" in first.get("/metrics").text

""".env.example, copied as-is to .env, must give every component its documented defaults."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from token_server.settings import DEFAULT_WEB_DIR
from token_server.settings import Settings as TokenSettings

ROOT = Path(__file__).resolve().parents[2]


def test_token_server_reads_env_example(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith(("KAIWA_", "LIVEKIT_")):
            monkeypatch.delenv(key)
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text())
    monkeypatch.chdir(tmp_path)
    s = TokenSettings()
    # a blank KAIWA_WEB_DIR must not become Path("") (= serve the working directory)
    assert s.web_dir == DEFAULT_WEB_DIR
    assert s.client_livekit_url == "ws://127.0.0.1:7880"
    assert s.allowed_agent_names == ["kaiwa"]

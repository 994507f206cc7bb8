"""`make run`'s livekit-server sends its webhooks to the token server's verified receiver,
signed with the key the token server checks (livekit.yaml + scripts/run-livekit-server.sh)."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import yaml

from tests.unit.test_token_helpers import IsolatedSettings
from token_server.app import WEBHOOK_PATH
from token_server.devkeys import DEV_API_KEY

REPO = Path(__file__).resolve().parents[2]


def test_livekit_yaml_sends_webhooks_to_the_token_server() -> None:
    cfg = yaml.safe_load((REPO / "livekit.yaml").read_text())
    defaults = IsolatedSettings()  # what `make run` uses without a .env
    webhook = cfg["webhook"]
    assert webhook["urls"] == [f"http://127.0.0.1:{defaults.token_port}{WEBHOOK_PATH}"]
    # the key livekit-server signs with is the one the token server verifies with
    # (overridden from LIVEKIT_API_KEY by run-livekit-server.sh, see below)
    assert webhook["api_key"] == DEV_API_KEY == defaults.livekit_api_key


def _run(tmp_path: Path, **env: str) -> tuple[str, str]:
    """run-livekit-server.sh in a scratch tree with a stand-in livekit-server; returns
    (the webhook key it was given, the config it was started with)."""
    scripts = tmp_path / "scripts"
    scripts.mkdir(exist_ok=True)
    fake = tmp_path / "fake-livekit-server"
    for path, text in (
        (
            scripts / "run-livekit-server.sh",
            (REPO / "scripts" / "run-livekit-server.sh").read_text(),
        ),
        (scripts / "ensure-livekit-server.sh", f"#!/bin/sh\necho {fake}\n"),
        (fake, '#!/bin/sh\necho "$LIVEKIT_WEBHOOK_API_KEY"\nshift\ncat "$1"\n'),
    ):
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    (tmp_path / "livekit.yaml").write_text((REPO / "livekit.yaml").read_text())
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KAIWA_", "LIVEKIT_"))}
    result = subprocess.run(
        ["bash", str(scripts / "run-livekit-server.sh")],
        env={**clean, "TMPDIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    key, _, config = result.stdout.partition("\n")
    return key, config


def test_run_script_signs_webhooks_with_the_api_key(tmp_path: Path) -> None:
    key, config = _run(tmp_path, KAIWA_DEV="1")
    assert key == DEV_API_KEY
    assert yaml.safe_load(config)["webhook"]["urls"] == [f"http://127.0.0.1:8080{WEBHOOK_PATH}"]
    own = "a-generated-secret-" + "q" * 30
    key, _ = _run(tmp_path, LIVEKIT_API_KEY="prod-key", LIVEKIT_API_SECRET=own)
    assert key == "prod-key"


def test_run_script_follows_the_token_server_port(tmp_path: Path) -> None:
    _, config = _run(tmp_path, KAIWA_DEV="1", KAIWA_TOKEN_PORT="9191")
    assert yaml.safe_load(config)["webhook"]["urls"] == [f"http://127.0.0.1:9191{WEBHOOK_PATH}"]

"""Worker settings: defaults, .env parsing, and failing loudly at start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from google.genai import types

from agent.gemini.model import build_realtime_model, compression_config, realtime_input_config
from agent.settings import Settings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for key in list(os.environ):
        if key.startswith(("KAIWA_", "GOOGLE_", "GEMINI_", "LIVEKIT_")):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_env_example_parses_to_defaults(clean_env: Path) -> None:
    (clean_env / ".env").write_text((ROOT / ".env.example").read_text())
    s = load_settings()
    assert s.model == "gemini-3.8-live"
    assert s.agent_name == "kaiwa"
    assert s.language is None and s.temperature is None
    assert len(s.livekit_api_secret.get_secret_value()) >= 32
    assert s.livekit_api_secret.get_secret_value() not in repr(s)


def test_every_setting_is_documented_in_env_example() -> None:
    documented = (ROOT / ".env.example").read_text()
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        names = [alias] if isinstance(alias, str) else list(getattr(alias, "choices", []))
        assert any(f"{n}=" in documented for n in names), f"{names} missing in .env.example"


def test_missing_google_key_is_one_clear_error(clean_env: Path) -> None:
    with pytest.raises(SettingsError, match="GOOGLE_API_KEY is not set"):
        load_settings().require_google_credentials()


def test_vertex_needs_a_project(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_GENAI_USE_VERTEXAI", "true")
    with pytest.raises(SettingsError, match="GOOGLE_CLOUD_PROJECT"):
        load_settings().require_google_credentials()


def test_bad_value_names_the_setting(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAIWA_TEMPERATURE", "hot")
    with pytest.raises(SettingsError, match="KAIWA_TEMPERATURE"):
        load_settings()


def test_instructions_file_wins(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = clean_env / "persona.txt"
    f.write_text("Speak like a pirate.\n")
    monkeypatch.setenv("KAIWA_INSTRUCTIONS", "inline")
    monkeypatch.setenv("KAIWA_INSTRUCTIONS_FILE", str(f))
    assert load_settings().resolved_instructions() == "Speak like a pirate."


def test_model_options_from_settings(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", "k")
    monkeypatch.setenv("KAIWA_VAD_START", "low")
    monkeypatch.setenv("KAIWA_VAD_SILENCE_MS", "400")
    s = load_settings()
    ric = realtime_input_config(s)
    assert ric is not None and ric.automatic_activity_detection is not None
    vad = ric.automatic_activity_detection
    assert vad.start_of_speech_sensitivity == types.StartSensitivity.START_SENSITIVITY_LOW
    assert vad.silence_duration_ms == 400
    cwc = compression_config(s)
    assert cwc is not None and cwc.trigger_tokens == 25600
    model = build_realtime_model(s, instructions="hi")
    assert model.model == s.model and model.input_chunk_ms == 20


def test_worker_exits_before_registering_without_key(clean_env: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "GEMINI_"))}
    # An unreachable LiveKit URL: if the worker tried to register, it would hang/retry.
    env["LIVEKIT_URL"] = "ws://127.0.0.1:9"
    env["KAIWA_DEV"] = "1"  # the dev keys are fine here; the missing Google key is the point
    proc = subprocess.run(
        [sys.executable, str(ROOT / "agent" / "agent.py"), "start"],
        cwd=clean_env,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines == [
        "kaiwa: GOOGLE_API_KEY is not set: put a Gemini API key in .env "
        "(or set GOOGLE_GENAI_USE_VERTEXAI=true with GOOGLE_CLOUD_PROJECT)"
    ]


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({}, "published development credentials"),
        ({"LIVEKIT_API_KEY": "prodkey", "LIVEKIT_API_SECRET": "short-secret"}, "shorter than 32"),
    ],
)
def test_worker_refuses_dev_credentials_outside_dev_mode(
    clean_env: Path, extra: dict[str, str], words: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIVEKIT_", "KAIWA_"))}
    env |= {"GOOGLE_API_KEY": "x", "LIVEKIT_URL": "ws://127.0.0.1:9"} | extra
    proc = subprocess.run(
        [sys.executable, str(ROOT / "agent" / "agent.py"), "start"],
        cwd=clean_env,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and words in lines[0] and lines[0].startswith("kaiwa: ")
    assert "kaiwa-dev-secret" not in proc.stderr and "short-secret" not in proc.stderr

"""Production refuses the published dev credentials; `make run` turns dev mode on."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.test_token_helpers import IsolatedSettings, make_app, make_settings
from token_server import devkeys
from token_server.devkeys import (
    DEV_API_KEY,
    DEV_API_SECRET,
    LIVEKIT_DEV_API_SECRET,
    credential_problem,
    is_dev_credential,
)
from token_server.settings import Settings
from token_server.startup import StartupError, check_settings

REPO = Path(__file__).resolve().parents[2]
STRONG = "a-generated-secret-" + "q" * 30


# -- the module the worker imports --------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "secret", "dev"),
    [
        (DEV_API_KEY, DEV_API_SECRET, True),
        (DEV_API_KEY, LIVEKIT_DEV_API_SECRET, True),  # livekit-server --dev
        (DEV_API_KEY, STRONG, True),  # the shipped key even with an own secret
        ("prod-key", DEV_API_SECRET, True),  # the shipped secret under another key
        ("prod-key", STRONG, False),
        (None, None, False),
    ],
)
def test_is_dev_credential(key: str | None, secret: str | None, dev: bool) -> None:
    assert is_dev_credential(key, secret) is dev


def test_credential_problem_both_ways() -> None:
    for key, secret in ((DEV_API_KEY, DEV_API_SECRET), ("prod-key", DEV_API_SECRET)):
        problem = credential_problem(key, secret, dev_mode=False)
        assert problem is not None and "development credentials" in problem
        assert "KAIWA_DEV=1" in problem and DEV_API_SECRET not in problem
        assert credential_problem(key, secret, dev_mode=True) is None
    short = credential_problem("prod-key", "x" * 31, dev_mode=False)
    assert short is not None and "shorter than 32" in short and "x" * 31 not in short
    assert credential_problem("prod-key", "x" * 31, dev_mode=True) is None
    assert credential_problem("prod-key", STRONG, dev_mode=False) is None
    assert credential_problem("prod-key", "x" * 32, dev_mode=False) is None
    assert "must be set" in (credential_problem("", STRONG, dev_mode=True) or "")
    assert "must be set" in (credential_problem("k", "", dev_mode=True) or "")
    assert "must be set" in (credential_problem(None, None, dev_mode=True) or "")


@pytest.mark.parametrize("module", ["token_server.devkeys", "token_server.roles"])
def test_worker_facing_modules_are_pure(module: str) -> None:
    # The worker imports these: no web framework, no settings library, no side effects.
    code = (
        f"import sys, {module}\n"
        "heavy = {'fastapi', 'starlette', 'pydantic', 'pydantic_settings', 'livekit'}\n"
        "loaded = heavy & {m.split('.')[0] for m in sys.modules}\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)


def test_shell_and_env_example_repeat_the_same_literals() -> None:
    # Shell and dotenv cannot import Python: keep their copies in step with devkeys.py.
    script = (REPO / "scripts" / "run-livekit-server.sh").read_text()
    env_example = (REPO / ".env.example").read_text()
    for literal in (DEV_API_KEY, DEV_API_SECRET, LIVEKIT_DEV_API_SECRET):
        assert literal in script, literal
    assert f"LIVEKIT_API_KEY={DEV_API_KEY}\n" in env_example
    assert f"LIVEKIT_API_SECRET={DEV_API_SECRET}\n" in env_example
    assert devkeys.MIN_SECRET_LENGTH == 32 and "-lt 32" in script


# -- the token server refuses them outside dev mode ----------------------------------------


def test_defaults_are_the_dev_credentials_and_refused_without_dev_mode() -> None:
    defaults = IsolatedSettings()
    assert defaults.livekit_api_key == DEV_API_KEY
    assert defaults.livekit_api_secret is not None
    assert defaults.livekit_api_secret.get_secret_value() == DEV_API_SECRET
    with pytest.raises(StartupError, match="development credentials"):
        check_settings(defaults)
    check_settings(IsolatedSettings(dev_mode=True))  # `make run`


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        (DEV_API_KEY, DEV_API_SECRET),
        (DEV_API_KEY, LIVEKIT_DEV_API_SECRET),
        (DEV_API_KEY, STRONG),
        ("prod-key", DEV_API_SECRET),
    ],
)
def test_app_refuses_dev_credentials_unless_dev_mode(key: str, secret: str) -> None:
    with pytest.raises(StartupError) as refused:
        make_app(livekit_api_key=key, livekit_api_secret=secret)
    assert secret not in str(refused.value)
    make_app(livekit_api_key=key, livekit_api_secret=secret, dev_mode=True)


def test_own_strong_credentials_start_without_dev_mode() -> None:
    check_settings(make_settings(livekit_api_key="prod-key", livekit_api_secret=STRONG))


def test_dev_mode_has_one_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(("KAIWA_", "LIVEKIT_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no .env
    # The agents CLI sets LIVEKIT_DEV_MODE as a side effect; it must not unlock production.
    monkeypatch.setenv("LIVEKIT_DEV_MODE", "1")
    assert Settings().dev_mode is False
    monkeypatch.setenv("KAIWA_DEV", "1")
    assert Settings().dev_mode is True


def test_env_example_as_is_is_refused_outside_dev_mode(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in list(os.environ):
        if name.startswith(("KAIWA_", "LIVEKIT_")):
            monkeypatch.delenv(name)
    (tmp_path / ".env").write_text((REPO / ".env.example").read_text())
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StartupError, match="development credentials"):
        check_settings(Settings())
    monkeypatch.setenv("KAIWA_DEV", "1")
    check_settings(Settings())


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAIWA_", "LIVEKIT_"))}
    env.update(extra)
    return env


def test_main_refuses_dev_credentials_with_one_line_and_exit_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "token_server", "--port", "1"],
        cwd=tmp_path,  # no .env: the built-in defaults are the dev credentials
        env=_clean_env(PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("token_server: ") and "KAIWA_DEV=1" in lines[0]
    assert "Traceback" not in result.stderr and DEV_API_SECRET not in result.stderr
    assert result.stdout == ""


# -- the run scripts -----------------------------------------------------------------------


def _executable(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _copy_script(name: str, root: Path) -> Path:
    target = root / "scripts" / name
    _executable(target, (REPO / "scripts" / name).read_text())
    return target


def test_make_run_sets_dev_mode_explicitly(tmp_path: Path) -> None:
    # scripts/run.sh in a scratch tree; a stand-in honcho prints what it would run with.
    script = _copy_script("run.sh", tmp_path)
    honcho = '#!/bin/sh\necho "KAIWA_DEV=$KAIWA_DEV"\necho "honcho $*"\n'
    _executable(tmp_path / ".venv" / "bin" / "honcho", honcho)
    (tmp_path / ".env").write_text("KAIWA_DEV=false\n")  # as copied from .env.example
    result = subprocess.run(
        ["bash", str(script)], env=_clean_env(), capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "KAIWA_DEV=1" in lines
    # honcho must not re-read .env: it would put KAIWA_DEV=false back over the environment.
    assert "honcho -e /dev/null -f Procfile start" in lines


def _run_livekit_script(
    tmp_path: Path, dotenv: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    script = _copy_script("run-livekit-server.sh", tmp_path)
    if dotenv is not None:
        (tmp_path / ".env").write_text(dotenv)
    fake = tmp_path / "fake-livekit-server"
    _executable(fake, '#!/bin/sh\necho "started with $*"\n')
    _executable(tmp_path / "scripts" / "ensure-livekit-server.sh", f"#!/bin/sh\necho {fake}\n")
    return subprocess.run(
        ["bash", str(script)], env=_clean_env(**env), capture_output=True, text=True, timeout=30
    )


def test_livekit_script_refuses_dev_credentials_outside_dev_mode(tmp_path: Path) -> None:
    for env in (
        {},  # defaults = the dev pair
        {"LIVEKIT_API_KEY": DEV_API_KEY, "LIVEKIT_API_SECRET": STRONG},
        {"LIVEKIT_API_KEY": "prod-key", "LIVEKIT_API_SECRET": DEV_API_SECRET},
        {"LIVEKIT_API_KEY": "prod-key", "LIVEKIT_API_SECRET": "too-short"},
        {"KAIWA_DEV": "false"},
        {"KAIWA_DEV": ""},
    ):
        result = _run_livekit_script(tmp_path, **env)
        assert result.returncode == 2, (env, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "KAIWA_DEV=1" in lines[0], result.stderr
        assert DEV_API_SECRET not in result.stderr and "too-short" not in result.stderr
        assert "started" not in result.stdout


@pytest.mark.parametrize(
    "env",
    [
        {"KAIWA_DEV": "1"},
        {"KAIWA_DEV": "true"},
        {"LIVEKIT_API_KEY": "prod-key", "LIVEKIT_API_SECRET": STRONG},
    ],
)
def test_livekit_script_starts_in_dev_mode_or_with_own_keys(
    tmp_path: Path, env: dict[str, str]
) -> None:
    result = _run_livekit_script(tmp_path, **env)
    assert result.returncode == 0, result.stderr
    assert "started with --config" in result.stdout


def test_livekit_script_env_example_needs_dev_mode_and_the_environment_wins(
    tmp_path: Path,
) -> None:
    dotenv = (REPO / ".env.example").read_text()  # dev keys, KAIWA_DEV=false
    refused = _run_livekit_script(tmp_path, dotenv)
    assert refused.returncode == 2 and "development credentials" in refused.stderr
    started = _run_livekit_script(tmp_path, dotenv, KAIWA_DEV="1")  # as `make run` does
    assert started.returncode == 0, started.stderr
    assert "started with --config" in started.stdout

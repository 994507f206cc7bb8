"""Push-to-talk: the setting, the model's input config, the session's hold and release."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from google.genai import types
from livekit.agents.utils import is_given

from agent.gemini.model import build_realtime_model, realtime_input_config
from agent.push_to_talk import push_to_talk_for, turn_handling
from agent.settings import SettingsError, load_settings
from agent.tools.access import Access


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for key in list(os.environ):
        if key.startswith(("KAIWA_", "GOOGLE_", "GEMINI_", "LIVEKIT_")):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GOOGLE_API_KEY", "k")
    return tmp_path


def test_turn_mode_defaults_to_open_mic(clean_env: Path) -> None:
    s = load_settings()
    assert s.turn_mode == "auto"
    assert not push_to_talk_for(s, Access(role="staff", identity="clerk"))
    assert realtime_input_config(s) is None  # Gemini's own VAD, nothing sent
    assert not is_given(turn_handling(False))  # the framework's default turn handling


def test_push_to_talk_applies_to_staff_calls_only(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAIWA_TURN_MODE", "push_to_talk")
    monkeypatch.setenv("KAIWA_VAD_START", "low")  # unused with push-to-talk
    s = load_settings()
    assert push_to_talk_for(s, Access(role="staff", identity="clerk"))
    # the caller page has no talk key: callers keep the open mic
    assert not push_to_talk_for(s, Access(role="caller", identity="c"))
    ric = realtime_input_config(s, push_to_talk=True)
    assert ric is not None and ric.automatic_activity_detection is not None
    assert ric.automatic_activity_detection.disabled is True
    assert ric.automatic_activity_detection.start_of_speech_sensitivity is None
    assert turn_handling(True) == {"turn_detection": "manual"}


def test_unknown_turn_mode_fails_at_start(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAIWA_TURN_MODE", "walkie_talkie")
    with pytest.raises(SettingsError, match="KAIWA_TURN_MODE"):
        load_settings()


def sent(sess: object) -> list[types.LiveClientRealtimeInput]:
    ch = sess._msg_ch  # type: ignore[attr-defined]
    out = []
    while not ch.empty():
        msg = ch.recv_nowait()
        if isinstance(msg, types.LiveClientRealtimeInput):
            out.append(msg)
    return out


async def test_only_the_key_opens_an_activity_and_the_release_makes_a_reply_due(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAIWA_TURN_MODE", "push_to_talk")
    model = build_realtime_model(load_settings(), instructions="hi", push_to_talk=True)
    sess = model.session()
    try:
        sent(sess)
        # the framework's reflex on every interrupt: no activity (it would cut replies off)
        sess.interrupt()
        sess.start_user_activity()
        assert sent(sess) == []
        sess.commit_audio()  # a release without a press sends nothing
        assert sent(sess) == [] and sess.clock.due_since is None

        sess.hold()
        sess.hold()  # once
        msgs = sent(sess)
        assert len(msgs) == 1 and msgs[0].activity_start is not None
        assert sess.clock.due_since is None  # Gemini rightly waits while the key is held

        sess.commit_audio()
        msgs = sent(sess)
        assert len(msgs) == 1 and msgs[0].activity_end is not None
        assert sess.clock.reason == "caller_turn"  # the reply is due from the release
    finally:
        await sess.aclose()


async def test_open_mic_sessions_are_unchanged(clean_env: Path) -> None:
    model = build_realtime_model(load_settings(), instructions="hi")
    sess = model.session()
    try:
        sent(sess)
        sess.start_user_activity()  # the plugin's no-op with server VAD
        sess.commit_audio()
        assert sent(sess) == []
    finally:
        await sess.aclose()


def test_a_signed_push_to_talk_credential_wins_for_any_role(clean_env: Path) -> None:
    """Per participant: a counter's token says kaiwa.turn_mode=push_to_talk (signed by the
    token server), so its call has the talk key on an open-mic worker, caller or staff."""
    s = load_settings()
    assert s.turn_mode == "auto"
    counter = {"kaiwa.role": "caller", "kaiwa.turn_mode": "push_to_talk"}
    assert push_to_talk_for(s, Access(role="caller", identity="counter-1"), counter)
    assert push_to_talk_for(s, Access(role="staff", identity="clerk"), counter)
    # anything else (missing, misspelt) is the worker's mode
    for attributes in ({}, {"kaiwa.turn_mode": "auto"}, {"kaiwa.turn_mode": "PTT"}, None):
        assert not push_to_talk_for(s, Access(role="caller", identity="c"), attributes)

"""Builds the Gemini realtime model from settings: the one path to Gemini."""

from __future__ import annotations

from typing import Any

from google.genai import types

from ..settings import Settings
from .session import CallHooks, KaiwaRealtimeModel, ResilienceOptions
from .speech import GateOptions

_START = {
    "high": types.StartSensitivity.START_SENSITIVITY_HIGH,
    "low": types.StartSensitivity.START_SENSITIVITY_LOW,
}
_END = {
    "high": types.EndSensitivity.END_SENSITIVITY_HIGH,
    "low": types.EndSensitivity.END_SENSITIVITY_LOW,
}


def realtime_input_config(
    settings: Settings, *, push_to_talk: bool = False
) -> types.RealtimeInputConfig | None:
    """Server VAD tuning; None keeps Gemini's defaults (nothing sent).

    Push-to-talk turns Gemini's activity detection off: the worker sends activityStart and
    activityEnd as the talk key is pressed and released (agent/push_to_talk.py).
    """
    if push_to_talk:
        return types.RealtimeInputConfig(
            automatic_activity_detection=types.AutomaticActivityDetection(disabled=True)
        )
    vad: dict[str, Any] = {}
    if settings.vad_start_sensitivity in _START:
        vad["start_of_speech_sensitivity"] = _START[settings.vad_start_sensitivity]
    if settings.vad_end_sensitivity in _END:
        vad["end_of_speech_sensitivity"] = _END[settings.vad_end_sensitivity]
    if settings.vad_silence_ms is not None:
        vad["silence_duration_ms"] = settings.vad_silence_ms
    if settings.vad_prefix_padding_ms is not None:
        vad["prefix_padding_ms"] = settings.vad_prefix_padding_ms
    if not vad:
        return None
    return types.RealtimeInputConfig(
        automatic_activity_detection=types.AutomaticActivityDetection(**vad)
    )


def compression_config(settings: Settings) -> types.ContextWindowCompressionConfig | None:
    """Sliding-window compression keeps sessions alive past the 15-minute audio limit."""
    if not settings.compression_trigger_tokens:
        return None
    window = types.SlidingWindow(target_tokens=settings.compression_target_tokens or None)
    return types.ContextWindowCompressionConfig(
        trigger_tokens=settings.compression_trigger_tokens, sliding_window=window
    )


def plugin_options(
    settings: Settings,
    *,
    instructions: str,
    resume_handle: str | None = None,
    push_to_talk: bool = False,
) -> dict[str, Any]:
    """The plugin's RealtimeModel keyword arguments for these settings (bench/ builds the
    plugin's own model from the same options for its "stock" column)."""
    kwargs: dict[str, Any] = {
        "instructions": instructions,
        "model": settings.model,
        "voice": settings.voice,
    }
    if settings.use_vertexai:
        kwargs |= {
            "vertexai": True,
            "project": settings.google_cloud_project,
            "location": settings.google_cloud_location,
        }
    elif settings.google_api_key is not None:
        kwargs["api_key"] = settings.google_api_key.get_secret_value()
    if settings.language:
        kwargs["language"] = settings.language
    if settings.temperature is not None:
        kwargs["temperature"] = settings.temperature
    if (ric := realtime_input_config(settings, push_to_talk=push_to_talk)) is not None:
        kwargs["realtime_input_config"] = ric
    if (cwc := compression_config(settings)) is not None:
        kwargs["context_window_compression"] = cwc
    if resume_handle:
        # continue a conversation whose job process died (agent/session_store.py)
        kwargs["session_resumption"] = types.SessionResumptionConfig(handle=resume_handle)
    if settings.affective_dialog is not None:
        kwargs["enable_affective_dialog"] = settings.affective_dialog
    if settings.proactive_audio is not None:
        kwargs["proactivity"] = settings.proactive_audio
    if settings.thinking_budget is not None:
        kwargs["thinking_config"] = types.ThinkingConfig(thinking_budget=settings.thinking_budget)
    return kwargs


def build_realtime_model(
    settings: Settings,
    *,
    instructions: str,
    resume_handle: str | None = None,
    hooks: CallHooks | None = None,
    push_to_talk: bool = False,
) -> KaiwaRealtimeModel:
    kwargs = plugin_options(
        settings,
        instructions=instructions,
        resume_handle=resume_handle,
        push_to_talk=push_to_talk,
    )
    resilience = ResilienceOptions(
        setup_timeout_s=settings.setup_timeout_s,
        stall_timeout_s=settings.stall_timeout_s,
        max_connects=settings.max_reconnects,
        connect_window_s=settings.reconnect_window_s,
        go_away_margin_s=settings.go_away_margin_s,
        audio_buffer_s=settings.audio_buffer_s,
        gate=GateOptions(rms_threshold=settings.speech_rms),
    )
    return KaiwaRealtimeModel(
        input_chunk_ms=settings.audio_frame_ms,
        resilience=resilience,
        hooks=hooks,
        manual_activity=push_to_talk,
        **kwargs,
    )

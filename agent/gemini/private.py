"""Every private name of livekit-plugins-google that kaiwa touches, why, and a start check.

kaiwa prefers the framework's public options and events; these are the places where the
plugin has no public hook for what kaiwa must do (session.py says which gap each closes).
A patch release that renames one would otherwise make a guarantee silently stop working,
so the worker checks them all before it registers and stops with one line if one moved.

google-genai is used through public calls only (`AsyncSession.receive`, `send_*`, `close`:
see connection.py).
"""

from __future__ import annotations

import inspect
from importlib import metadata

# Methods of realtime_api.RealtimeSession kaiwa overrides or calls, with their parameters.
METHODS: dict[str, tuple[tuple[str, ...], str]] = {
    "_send_client_event": (("self", "event"), "sees every outgoing message (ledger, clock)"),
    "_mark_restart_needed": (("self", "on_error"), "keeps the caller's audio over a restart"),
    "_handle_tool_calls": (("self", "tool_call"), "trailing words after a tool call"),
    "_handle_tool_call_cancellation": (
        ("self", "tool_call_cancellation"),
        "toolCallCancellation reaches the running tool (the plugin only logs it)",
    ),
    "_handle_go_away": (("self", "go_away"), "GoAway is a TODO in the plugin"),
    "_handle_server_content": (("self", "server_content"), "trailing words after a tool call"),
    "_is_new_generation": (("self", "resp"), "trailing words stay in the tool turn"),
    "_start_new_generation": (("self",), "per-generation audio flag"),
    "_close_output_streams": (("self", "gen"), "closes the held trailing streams"),
    "_mark_current_generation_done": (("self",), "when a reply ended (late transcripts)"),
    "push_audio": (("self", "frame"), "the caller's speech gate (public, listed for shape)"),
}

# Attributes set in RealtimeSession.__init__ (checked in its source).
ATTRIBUTES: dict[str, str] = {
    "_client": "routes connect() through kaiwa's bounded, paced connect guard",
    "_bstream": "input chunk size (the plugin hard-codes 50 ms)",
    "_msg_ch": "the send queue: audio carried over restarts, replays after a resume",
    "_active_session": "is a connection up (backlog audio while it is not)",
    "_session_should_close": "GoAway move and stall restarts",
    "_session_error": "a stall surfaces as an error so the plugin resumes",
    "_current_generation": "is a reply streaming (GoAway waits for its end)",
    "_session_resumption_handle": "logs whether a reconnect resumed",
    "_opts": "vertexai flag (no per-response scheduling there)",
}

# Attributes of realtime_api.RealtimeModel kaiwa's model subclass uses.
MODEL_ATTRIBUTES: dict[str, str] = {
    "_sessions": "session() registers kaiwa's session subclass like the plugin's own",
}

# Attributes of realtime_api._ResponseGeneration used on the current generation.
GENERATION_FIELDS = ("_done", "audio_ch", "text_ch", "push_text", "input_id", "input_transcription")


class PrivateNameMissing(RuntimeError):
    pass


def check() -> None:
    """Raise PrivateNameMissing naming the package, version and name that moved."""
    from livekit.plugins.google.realtime import realtime_api

    version = metadata.version("livekit-plugins-google")
    where = f"livekit-plugins-google {version}"
    cls = realtime_api.RealtimeSession
    for name, (params, why) in METHODS.items():
        fn = getattr(cls, name, None)
        if fn is None:
            raise PrivateNameMissing(f"{where} has no RealtimeSession.{name} (needed: {why})")
        got = tuple(inspect.signature(fn).parameters)
        if got[: len(params)] != params:
            raise PrivateNameMissing(
                f"{where}: RealtimeSession.{name}{got} changed shape, expected {params} "
                f"(needed: {why})"
            )
    source = inspect.getsource(cls.__init__) + inspect.getsource(cls)
    for attr, why in ATTRIBUTES.items():
        if f"self.{attr}" not in source:
            raise PrivateNameMissing(f"{where}: RealtimeSession no longer sets {attr} ({why})")
    model_source = inspect.getsource(realtime_api.RealtimeModel)
    for attr, why in MODEL_ATTRIBUTES.items():
        if f"self.{attr}" not in model_source:
            raise PrivateNameMissing(f"{where}: RealtimeModel no longer sets {attr} ({why})")
    gen_fields = set(getattr(realtime_api._ResponseGeneration, "__dataclass_fields__", {}))
    gen_fields |= set(dir(realtime_api._ResponseGeneration))
    for name in GENERATION_FIELDS:
        if name not in gen_fields:
            raise PrivateNameMissing(f"{where}: _ResponseGeneration has no {name}")
    for const in ("INPUT_AUDIO_SAMPLE_RATE", "INPUT_AUDIO_CHANNELS", "OUTPUT_AUDIO_SAMPLE_RATE"):
        if not hasattr(realtime_api, const):
            raise PrivateNameMissing(f"{where}: realtime_api.{const} is gone")

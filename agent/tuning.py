"""Latency tuning that lives outside the product wiring (measured in bench/results/).

Framework gap: on every Gemini connect (the first one and every reconnect) the plugin turns
each function tool into a JSON schema through `llm.utils.build_legacy_openai_schema`, which
builds a fresh pydantic model per tool, synchronously on the job's event loop, right before
the WebSocket opens. kaiwa offers a dozen tools, so each connect spends ~15 ms of CPU on an
idle machine (100–280 ms event-loop stalls under load, seen by livekit-agents' loop monitor)
before Gemini is even dialled. The tools are module-level objects that never change, so the
schema is cached per tool object here, and `prewarm()` (the AgentServer's setup_fnc, run
while the job process waits idle in the pool) fills the cache and performs the first-use
work (imports, TLS library init, the first genai.Client and LiveConnectConfig) before any
caller is waiting.
"""

from __future__ import annotations

import copy
import functools
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any

from livekit.agents import JobProcess, llm

logger = logging.getLogger("kaiwa.tuning")

_SchemaBuilder = Callable[..., dict[str, Any]]
_cache: dict[tuple[int, bool], tuple[Any, dict[str, Any]]] = {}


def install_schema_cache() -> None:
    """Memoise `llm.utils.build_legacy_openai_schema` per (tool object, tagging). Idempotent."""
    original: _SchemaBuilder = llm.utils.build_legacy_openai_schema
    if getattr(original, "_kaiwa_cached", False):
        return

    @functools.wraps(original)
    def cached(function_tool: Any, *, internally_tagged: bool = False) -> dict[str, Any]:
        key = (id(function_tool), internally_tagged)
        hit = _cache.get(key)
        if hit is None or hit[0] is not function_tool:  # id reuse after a tool was freed
            hit = (function_tool, original(function_tool, internally_tagged=internally_tagged))
            _cache[key] = hit
        return copy.deepcopy(hit[1])  # callers own their copy, as with the original

    cached._kaiwa_cached = True  # type: ignore[attr-defined]
    llm.utils.build_legacy_openai_schema = cached


def _warm_genai() -> None:
    """The plugin makes a genai.Client and a LiveConnectConfig on the job's loop when the
    session starts: ~190 ms for the first Client in a process (lazy imports, pydantic
    model builds) vs ~80 ms after, and ~24 ms vs 0.2 ms for the first config. Pay the
    first-time part here. No network: a Client does not connect until used."""
    from google import genai
    from google.genai import types

    genai.Client(api_key="prewarm")
    types.LiveConnectConfig(
        response_modalities=[types.Modality.AUDIO],
        system_instruction=types.Content(parts=[types.Part(text="prewarm")]),
        speech_config=types.SpeechConfig(
            voice_config=types.VoiceConfig(
                prebuilt_voice_config=types.PrebuiltVoiceConfig(voice_name="Puck")
            )
        ),
        tools=[
            types.Tool(
                function_declarations=[
                    types.FunctionDeclaration(
                        name="f", description="d", parameters_json_schema={"type": "object"}
                    )
                ]
            )
        ],
        input_audio_transcription=types.AudioTranscriptionConfig(),
        output_audio_transcription=types.AudioTranscriptionConfig(),
        session_resumption=types.SessionResumptionConfig(handle=None),
        context_window_compression=types.ContextWindowCompressionConfig(
            trigger_tokens=2, sliding_window=types.SlidingWindow(target_tokens=1)
        ),
        realtime_input_config=types.RealtimeInputConfig(),
        generation_config=types.GenerationConfig(temperature=0.5),
    ).model_dump(exclude_none=True)


def prewarm(proc: JobProcess) -> None:
    """setup_fnc: runs once per job process before it takes a job (not on the call path)."""
    started = time.monotonic()
    install_schema_cache()
    try:
        from .settings import load_settings
        from .tools import build_tools

        for tool in build_tools(load_settings()):
            if isinstance(tool, llm.FunctionTool):
                llm.utils.build_legacy_openai_schema(tool, internally_tagged=True)
        # the first SSLContext pays OpenSSL's one-off initialisation
        ssl.create_default_context()
        _warm_genai()
    except Exception as e:  # prewarming is an optimisation; never fail the process on it
        logger.warning("prewarm incomplete: %s", e)
    proc.userdata["kaiwa_prewarm_s"] = time.monotonic() - started

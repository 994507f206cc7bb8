"""Latency tuning that lives outside the product wiring (measured in bench/results/).

On every Gemini connect the plugin builds each FunctionTool's JSON schema with a fresh
pydantic model on the job's loop (~15 ms for a dozen tools). kaiwa's Python tools are raw
tools whose schema is built once at import (agent/tools/runtime.py), so that cost is gone
without patching the framework. `prewarm()` (the AgentServer's setup_fnc, run while the
job process waits idle in the pool) does the remaining first-use work: importing the tools,
OpenSSL's initialisation, the first genai.Client and LiveConnectConfig.
"""

from __future__ import annotations

import logging
import ssl
import time

from livekit.agents import JobProcess

logger = logging.getLogger("kaiwa.tuning")


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
    try:
        from .tools import python_tools

        python_tools()  # imports every tool module: schemas are built at import
        # the first SSLContext pays OpenSSL's one-off initialisation
        ssl.create_default_context()
        _warm_genai()
    except Exception as e:  # prewarming is an optimisation; never fail the process on it
        logger.warning("prewarm incomplete: %s", e)
    proc.userdata["kaiwa_prewarm_s"] = time.monotonic() - started

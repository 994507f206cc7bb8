"""Fake Gemini Live (BidiGenerateContent) server for tests. See tests/fakes/README.md."""

from .audio import (
    DEFAULT_VOICED_RMS,
    INPUT_RATE,
    OUTPUT_RATE,
    TurnDetector,
    UserTurn,
    resample,
    rms,
    silence_pcm,
    speech_like_pcm,
)
from .conversation import ConnectionGone, FakeConnection, FakeConversation, ProtocolViolation
from .records import (
    ActivityRecord,
    AudioChunk,
    ClientContentRecord,
    HandleRecord,
    LostRecord,
    MessageRecord,
    ProtocolErrorRecord,
    SetupInfo,
    SpeakResult,
    TextRecord,
    ToolCallRecord,
    ToolResponseRecord,
    VideoFrame,
    proto_duration,
)
from .script import AutoScript
from .server import GeminiLiveFake

__all__ = [
    "DEFAULT_VOICED_RMS",
    "INPUT_RATE",
    "OUTPUT_RATE",
    "ActivityRecord",
    "AudioChunk",
    "AutoScript",
    "ClientContentRecord",
    "ConnectionGone",
    "FakeConnection",
    "FakeConversation",
    "GeminiLiveFake",
    "HandleRecord",
    "LostRecord",
    "MessageRecord",
    "ProtocolErrorRecord",
    "ProtocolViolation",
    "SetupInfo",
    "SpeakResult",
    "TextRecord",
    "ToolCallRecord",
    "ToolResponseRecord",
    "TurnDetector",
    "UserTurn",
    "VideoFrame",
    "proto_duration",
    "resample",
    "rms",
    "silence_pcm",
    "speech_like_pcm",
]

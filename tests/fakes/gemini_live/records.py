"""What the fake records, plus small protocol helpers (proto3 JSON quirks)."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from .audio import DEFAULT_VOICED_RMS, INPUT_RATE, rms

JsonDict = dict[str, Any]

# generate_reply() with no instructions sends this lone user turn (protocol doc §3.4)
REPLY_PLACEHOLDER = "."
_INSTRUCTIONS_RE = re.compile(r"^\s*<instructions>\s*(.*?)\s*</instructions>\s*$", re.S)
_CAMEL_RE = re.compile(r"_([a-z])")


def camel(name: str) -> str:
    return _CAMEL_RE.sub(lambda m: m.group(1).upper(), name)


def snake(name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def pick(obj: Any, path: str, default: Any = None) -> Any:
    """Read a dotted path from a client JSON dict, accepting camelCase or snake_case keys.

    Clients mix both in one message (the server parses proto3 JSON, which allows either).
    """
    cur = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return default
        for key in (part, camel(part), snake(part)):
            if key in cur:
                cur = cur[key]
                break
        else:
            return default
    return cur


def b64decode_any(data: str) -> bytes:
    """Decode standard or URL-safe base64 (the SDK sends URL-safe), padding optional."""
    s = data.strip().replace("-", "+").replace("_", "/")
    s += "=" * (-len(s) % 4)
    try:
        return base64.b64decode(s, validate=True)
    except binascii.Error as e:
        raise ValueError(f"bad base64: {e}") from e


def b64encode(data: bytes) -> str:
    # Google's servers answer with the standard alphabet
    return base64.b64encode(data).decode("ascii")


def proto_duration(seconds: float) -> str:
    """proto3 JSON Duration: "10s", "1.500s" (0, 3, 6 or 9 fractional digits)."""
    nanos = round(seconds * 1e9)
    whole, frac = divmod(abs(nanos), 1_000_000_000)
    sign = "-" if nanos < 0 else ""
    if frac == 0:
        return f"{sign}{whole}s"
    for digits in (3, 6, 9):
        scale = 10 ** (9 - digits)
        if frac % scale == 0:
            return f"{sign}{whole}.{frac // scale:0{digits}d}s"
    raise AssertionError("unreachable")


@dataclass
class MessageRecord:
    """One frame, either direction. Big base64 payloads are replaced by "<N bytes>"."""

    at: float
    direction: Literal["in", "out"]
    connection: int  # FakeConnection.index (fake-wide)
    data: Any  # parsed JSON, or the raw text if it was not JSON
    dropped: bool = False  # outgoing frame swallowed because the connection was hung


VAD_FRAME_MS = 20  # clients may send big blobs; levels and the VAD work on 20 ms frames


@dataclass
class AudioChunk:
    at: float
    pcm: bytes  # int16 little-endian mono at 16 kHz (resampled if the client sent another rate)
    level: float  # RMS of the whole chunk
    source_mime: str
    connection: int
    voiced_threshold: float = DEFAULT_VOICED_RMS
    frames: list[tuple[float, float]] = field(default_factory=list)  # (seconds, rms) per 20 ms
    voiced_seconds: float = 0.0  # seconds of 20 ms frames at or above the threshold
    # received on an old connection after the handle a resume used: the model never "heard" it
    lost: bool = False

    def __post_init__(self) -> None:
        step = INPUT_RATE * VAD_FRAME_MS // 1000 * 2
        for i in range(0, len(self.pcm), step):
            sub = self.pcm[i : i + step]
            self.frames.append((len(sub) / 2 / INPUT_RATE, rms(sub)))
        self.voiced_seconds = sum(s for s, lv in self.frames if lv >= self.voiced_threshold)

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 2 / INPUT_RATE

    @property
    def rms(self) -> float:
        return self.level

    @property
    def voiced(self) -> bool:
        """Any voiced 20 ms frame in the chunk."""
        return self.voiced_seconds > 0


@dataclass
class VideoFrame:
    at: float
    mime_type: str
    size: int  # decoded bytes
    connection: int


@dataclass
class TextRecord:
    """User text that reached the fake (typed chat, realtime text)."""

    at: float
    text: str
    via: Literal["realtime_input", "client_content"]
    connection: int
    lost: bool = False  # arrived after the handle a later resume used


@dataclass
class ActivityRecord:
    at: float
    kind: Literal["activityStart", "activityEnd", "audioStreamEnd"]
    connection: int


@dataclass
class ClientContentRecord:
    at: float
    turns: list[JsonDict]
    turn_complete: bool
    raw: JsonDict
    connection: int
    lost: bool = False  # arrived after the handle a later resume used

    @property
    def parts(self) -> list[tuple[str, str]]:
        """(role, text) for every text part, in order."""
        out: list[tuple[str, str]] = []
        for turn in self.turns:
            role = str(turn.get("role") or "user")
            for part in turn.get("parts") or []:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    out.append((role, part["text"]))
        return out

    @property
    def instructions(self) -> str | None:
        """Reply instructions in a generate_reply(instructions=...) request, else None.

        Two shapes (protocol doc §3.4): a model-role text turn followed by the "." user
        placeholder, or (3.1/3.8 models) a user turn wrapped in <instructions>...</instructions>.
        """
        if not self.turn_complete:
            return None
        parts = self.parts
        for role, text in parts:
            m = _INSTRUCTIONS_RE.match(text)
            if role == "user" and m:
                return m.group(1)
        if parts and parts[-1] == ("user", REPLY_PLACEHOLDER):
            model_texts = [t for r, t in parts[:-1] if r == "model"]
            if model_texts:
                return "\n".join(model_texts)
        return None

    @property
    def user_texts(self) -> list[str]:
        """User-role texts that are neither the "." placeholder nor wrapped instructions."""
        return [
            t
            for r, t in self.parts
            if r == "user" and t.strip() != REPLY_PLACEHOLDER and not _INSTRUCTIONS_RE.match(t)
        ]

    @property
    def is_reply_request(self) -> bool:
        """turnComplete=true: the client wants the model to answer now."""
        return self.turn_complete

    @property
    def is_greeting_request(self) -> bool:
        return self.instructions is not None


@dataclass
class ToolCallRecord:
    id: str
    name: str
    args: JsonDict
    sent_at: float
    connection: int
    response: JsonDict | None = None  # the functionResponses[].response dict
    response_at: float | None = None
    cancelled_at: float | None = None
    # issued after the handle a resume used: the resumed session never made this call
    forgotten_at: float | None = None
    response_count: int = 0  # functionResponses carrying this id (1 is the only right answer)

    @property
    def pending(self) -> bool:
        """Issued, not answered, not cancelled, not forgotten by a resume."""
        return self.response_at is None and self.cancelled_at is None and self.forgotten_at is None


@dataclass
class ToolResponseRecord:
    at: float
    id: str | None
    name: str | None
    response: JsonDict
    scheduling: str | None
    raw: JsonDict  # the whole functionResponses[] entry
    connection: int
    # None: accepted. Else the protocol error kind ("unknown_tool_call_id", ...)
    rejected: str | None = None


ProtocolErrorKind = Literal[
    "unknown_tool_call_id",  # never issued, or forgotten by a resume
    "duplicate_tool_response",  # the id was already answered
    "cancelled_tool_call_answered",  # answered after toolCallCancellation (recorded only)
    "tool_response_without_id",
    "invalid_payload",  # undecodable JSON/base64 from the client
    "unsupported_setup",  # a setup field the model refuses (3.8)
]


@dataclass
class ProtocolErrorRecord:
    """Something the real service would refuse. `closed`: the fake closed the socket (1007)."""

    at: float
    kind: ProtocolErrorKind
    detail: str
    connection: int
    conversation: str | None  # FakeConversation.id
    closed: bool


@dataclass
class HandleRecord:
    """A resumption handle and the conversation state it stands for."""

    handle: str
    issued_at: float
    connection: int
    audio_count: int  # len(conv.audio) when issued
    user_turn_count: int
    text_count: int
    user_text_count: int
    client_content_count: int
    tool_call_ids: frozenset[str]  # calls the conversation had made by then
    unanswered_texts: tuple[str, ...]  # typed text waiting for a reply request


@dataclass
class LostRecord:
    """What a resume threw away: everything received after `handle` on older connections."""

    at: float
    handle: str
    resumed_on: int  # connection index of the resuming connection
    audio_chunks: int
    audio_seconds: float
    voiced_seconds: float
    user_turns: int
    texts: list[str]  # typed user text (any route)
    client_contents: int
    tool_call_ids: list[str]  # forgotten calls (issued after the handle)


@dataclass
class SpeakResult:
    text: str
    connection: int  # connection index the audio went out on
    started_at: float
    audio_seconds: float  # total audio planned
    chunks_planned: int
    first_audio_sent_at: float | None = None
    last_audio_sent_at: float | None = None
    ended_at: float | None = None
    chunks_sent: int = 0
    completed: bool = False  # generationComplete + turnComplete went out
    interrupted: bool = False
    interrupted_at: float | None = None
    interrupted_by: Literal["barge_in", "explicit"] | None = None
    disconnected: bool = False  # the connection died mid-speech
    transcript_sent: str = ""  # outputTranscription text actually sent
    # inputTranscription pieces actually sent, with their send times
    input_transcript_sent: list[tuple[float, str]] = field(default_factory=list)
    turn_complete_at: float | None = None

    @property
    def audio_seconds_sent(self) -> float:
        if not self.chunks_planned:
            return 0.0
        return self.audio_seconds * self.chunks_sent / self.chunks_planned


@dataclass
class SetupInfo:
    """Convenience view over a setup dict (camelCase and snake_case both accepted)."""

    raw: JsonDict = field(default_factory=dict)

    @property
    def model(self) -> str | None:
        m = pick(self.raw, "model")
        return m if isinstance(m, str) else None

    @property
    def voice(self) -> str | None:
        path = "generationConfig.speechConfig.voiceConfig.prebuiltVoiceConfig.voiceName"
        v = pick(self.raw, path)
        return v if isinstance(v, str) else None

    @property
    def language(self) -> str | None:
        v = pick(self.raw, "generationConfig.speechConfig.languageCode")
        return v if isinstance(v, str) else None

    @property
    def system_instruction(self) -> str | None:
        si = pick(self.raw, "systemInstruction")
        if isinstance(si, str):
            return si
        if not isinstance(si, dict):
            return None
        texts = [p["text"] for p in si.get("parts") or [] if isinstance(p, dict) and "text" in p]
        return "\n".join(texts)

    @property
    def tool_names(self) -> list[str]:
        names: list[str] = []
        for tool in pick(self.raw, "tools") or []:
            for decl in pick(tool, "functionDeclarations") or []:
                if isinstance(decl, dict) and isinstance(decl.get("name"), str):
                    names.append(decl["name"])
        return names

    @property
    def response_modalities(self) -> list[str]:
        return list(pick(self.raw, "generationConfig.responseModalities") or [])

    @property
    def resumption_handle(self) -> str | None:
        h = pick(self.raw, "sessionResumption.handle")
        return h if isinstance(h, str) and h else None

    @property
    def wants_resumption(self) -> bool:
        return pick(self.raw, "sessionResumption") is not None

    @property
    def input_transcription(self) -> bool:
        return pick(self.raw, "inputAudioTranscription") is not None

    @property
    def output_transcription(self) -> bool:
        return pick(self.raw, "outputAudioTranscription") is not None

    # ------------------------------------------------------------ model family (2.5 / 3.8)

    @property
    def model_family(self) -> str:
        """ "3.8" for gemini-3.8-live*, "3.1" for 3.1 models, else "2.5"."""
        name = (self.model or "").removeprefix("models/")
        for family in ("3.8", "3.1"):
            if family in name:
                return family
        return "2.5"

    @property
    def extended_thinking(self) -> bool:
        return "extended-thinking" in (self.model or "")

    @property
    def default_tool_behavior(self) -> str:
        """What the server assumes for a declaration without `behavior`."""
        return "NON_BLOCKING" if self.model_family == "3.8" else "BLOCKING"

    @property
    def tool_behaviors(self) -> dict[str, str]:
        """{tool name: "BLOCKING" | "NON_BLOCKING"}, the explicit value or the model default."""
        out: dict[str, str] = {}
        for tool in pick(self.raw, "tools") or []:
            for decl in pick(tool, "functionDeclarations") or []:
                if isinstance(decl, dict) and isinstance(decl.get("name"), str):
                    b = decl.get("behavior")
                    explicit = str(b).upper() if b not in (None, "", "UNSPECIFIED") else None
                    out[decl["name"]] = explicit or self.default_tool_behavior
        return out

    @property
    def affective_dialog(self) -> bool | None:
        for path in ("generationConfig.enableAffectiveDialog", "enableAffectiveDialog"):
            v = pick(self.raw, path)
            if v is not None:
                return bool(v)
        return None

    @property
    def thinking_config(self) -> JsonDict | None:
        v = pick(self.raw, "generationConfig.thinkingConfig")
        return v if isinstance(v, dict) else None

    @property
    def proactive_audio(self) -> bool | None:
        """proactivity.proactiveAudio as sent (None when the client left it out)."""
        p = pick(self.raw, "proactivity")
        if not isinstance(p, dict):
            return None
        v = pick(p, "proactiveAudio")
        return bool(v) if v is not None else False  # proto3: {} means false

    def refusal(self) -> str | None:
        """Why the real service would refuse this setup (3.8 rules), else None."""
        if self.model_family != "3.8":
            return None
        model = (self.model or "").removeprefix("models/")
        if self.affective_dialog:
            return f"enable_affective_dialog is not supported by {model}."
        if self.thinking_config is not None and not self.extended_thinking:
            return f"thinking_config is not supported by {model}."
        if self.proactive_audio is False:
            return f"proactive_audio cannot be disabled on {model}."
        return None

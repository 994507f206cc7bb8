"""PCM helpers for the Gemini Live fake: test signals, levels, resampling, energy VAD."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

INPUT_RATE = 16_000  # what Gemini Live expects from clients (and what the plugin sends)
OUTPUT_RATE = 24_000  # what Gemini Live sends back
OUTPUT_MIME = f"audio/pcm;rate={OUTPUT_RATE}"

# int16 RMS above which a chunk counts as voiced (about -36 dBFS). speech_like_pcm() sits
# around 5000 in its quietest 50 ms window, digital silence at 0.
DEFAULT_VOICED_RMS = 500.0

_RATE_RE = re.compile(r"rate=(\d+)")


def speech_like_pcm(
    seconds: float,
    rate: int = OUTPUT_RATE,
    *,
    f0: float = 140.0,
    syllable_hz: float = 4.0,
    peak: float = 0.5,
) -> bytes:
    """A deterministic voice-like int16 mono signal.

    Harmonics of `f0` with a 1/k spectrum (a crude glottal source), a slow vibrato, and a
    `syllable_hz` amplitude envelope that never drops below 35 %, so every 20-50 ms chunk of it
    is "voiced" for an energy VAD while it still looks like speech on a level meter.
    """
    n = max(0, round(seconds * rate))
    t = np.arange(n, dtype=np.float64) / rate
    # vibrato: +-3 % pitch wobble at 5 Hz, integrated into the phase
    phase = 2 * np.pi * f0 * (t + 0.03 / (2 * np.pi * 5.0) * np.sin(2 * np.pi * 5.0 * t))
    sig = np.zeros(n, dtype=np.float64)
    for k in range(1, 11):
        if k * f0 * 1.05 >= rate / 2:
            break
        sig += np.sin(k * phase) / k
    envelope = 0.675 + 0.325 * np.sin(2 * np.pi * syllable_hz * t - np.pi / 2)
    sig *= envelope
    top = float(np.max(np.abs(sig))) if n else 1.0
    sig *= peak * 32767.0 / (top or 1.0)
    return sig.astype("<i2").tobytes()


def silence_pcm(seconds: float, rate: int = INPUT_RATE) -> bytes:
    return b"\x00\x00" * max(0, round(seconds * rate))


def rms(pcm: bytes) -> float:
    """Root mean square of int16 little-endian mono PCM (0.0 for empty input)."""
    if len(pcm) < 2:
        return 0.0
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float64)
    return float(math.sqrt(float(np.mean(samples * samples))))


def rate_from_mime(mime_type: str | None, default: int = INPUT_RATE) -> int:
    """`audio/pcm;rate=16000` -> 16000. Gemini assumes 16 kHz when no rate is given."""
    m = _RATE_RE.search(mime_type or "")
    return int(m.group(1)) if m else default


def resample(pcm: bytes, src_rate: int, dst_rate: int) -> bytes:
    """Linear-interpolation resampling; plenty for level/VAD measurements in tests."""
    if src_rate == dst_rate or len(pcm) < 2:
        return pcm
    src = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float64)
    n_out = max(1, round(len(src) * dst_rate / src_rate))
    x_out = np.arange(n_out, dtype=np.float64) * (src_rate / dst_rate)
    out = np.interp(x_out, np.arange(len(src), dtype=np.float64), src)
    return np.clip(np.round(out), -32768, 32767).astype("<i2").tobytes()


def pcm_seconds(pcm: bytes, rate: int) -> float:
    return len(pcm) / 2 / rate


@dataclass
class UserTurn:
    """One stretch of user speech found by the energy VAD."""

    started_at: float  # monotonic arrival time of the first voiced chunk
    last_voiced_at: float  # arrival time of the last voiced chunk
    ended_at: float  # arrival time of the chunk that completed the trailing silence
    voiced_seconds: float  # audio seconds of voiced chunks in the turn
    end_chunk_index: int  # index in FakeConversation.audio of that chunk
    lost: bool = False  # ended on an old connection after the handle a resume used
    ignored: bool = False  # the fake was told to stay silent after it (session hang)
    transcript: str | None = None  # what the auto script "heard" (inputTranscription)


class TurnDetector:
    """Incremental energy VAD: a turn is voiced audio followed by >= silence_ms of silence.

    Silence is measured in *audio* time (the plugin streams silence continuously), so a turn
    only ends if the client keeps sending audio. Voiced stretches shorter than
    `min_voiced_ms` (clicks, noise) are dropped.
    """

    def __init__(
        self,
        *,
        silence_ms: float = 500.0,
        min_voiced_ms: float = 100.0,
        threshold: float = DEFAULT_VOICED_RMS,
    ) -> None:
        self.silence_ms = silence_ms
        self.min_voiced_ms = min_voiced_ms
        self.threshold = threshold
        self._started_at: float | None = None
        self._last_voiced_at = 0.0
        self._voiced_s = 0.0
        self._silence_s = 0.0

    @property
    def in_turn(self) -> bool:
        return self._started_at is not None

    def feed(self, index: int, at: float, seconds: float, level: float) -> UserTurn | None:
        if level >= self.threshold:
            if self._started_at is None:
                self._started_at = at
                self._voiced_s = 0.0
            self._voiced_s += seconds
            self._last_voiced_at = at
            self._silence_s = 0.0
            return None
        if self._started_at is None:
            return None
        self._silence_s += seconds
        if self._silence_s * 1000.0 < self.silence_ms:
            return None
        turn = None
        if self._voiced_s * 1000.0 >= self.min_voiced_ms:
            turn = UserTurn(
                started_at=self._started_at,
                last_voiced_at=self._last_voiced_at,
                ended_at=at,
                voiced_seconds=self._voiced_s,
                end_chunk_index=index,
            )
        self._started_at = None
        return turn

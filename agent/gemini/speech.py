"""The caller's turns as the worker sees them: an energy gate on the 16 kHz stream.

Gemini's VAD decides turns on the server, and a hung server says nothing at all, so kaiwa
needs its own notion of "the caller just finished speaking" to know a reply is due. This is
a cheap gate (RMS per frame, one numpy dot, no allocation beyond the view), not a VAD for
turn-taking: it only starts the reply clock. It also keeps references to the last turn's
outgoing audio chunks so a turn that a resume lost can be sent again.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class GateOptions:
    rms_threshold: float = 400.0  # int16 RMS; speech at a normal level is well above 1000
    min_speech_s: float = 0.25  # shorter bursts (a click, a cough) are not a turn
    end_silence_s: float = 0.8  # Gemini's own end-of-turn silence is around 0.5-1 s
    keep_s: float = 15.0  # audio kept for a replay of the last turn
    pre_roll_s: float = 0.3


class SpeechGate:
    """Feed frames with `push`; it answers "started", "ended" or None per frame."""

    def __init__(self, opts: GateOptions | None = None) -> None:
        self.opts = opts or GateOptions()
        self.speaking = False
        self._voiced_s = 0.0
        self._silent_s = 0.0
        self._t = 0.0  # audio time, seconds
        self.turn_start: float | None = None
        self.turn_end: float | None = None
        self._buf = np.zeros(4800, dtype=np.float32)  # reused: no allocation per frame

    def level(self, pcm: Any) -> float:
        samples = np.frombuffer(pcm, dtype=np.int16)
        n = samples.size
        if n == 0:
            return 0.0
        if n > self._buf.size:
            self._buf = np.zeros(n, dtype=np.float32)
        f = self._buf[:n]
        np.copyto(f, samples, casting="unsafe")
        return float(np.sqrt(np.dot(f, f) / n))

    def push(self, pcm: Any, seconds: float) -> str | None:
        self._t += seconds
        voiced = self.level(pcm) >= self.opts.rms_threshold
        if voiced:
            self._silent_s = 0.0
            self._voiced_s += seconds
            if not self.speaking and self._voiced_s >= self.opts.min_speech_s:
                self.speaking = True
                self.turn_start = self._t - self._voiced_s
                return "started"
            return None
        self._silent_s += seconds
        if self._silent_s >= self.opts.end_silence_s:
            self._voiced_s = 0.0
            if self.speaking:
                self.speaking = False
                self.turn_end = self._t - self._silent_s
                return "ended"
        return None

    @property
    def now(self) -> float:
        return self._t


class TurnAudio:
    """References to the recent outgoing audio chunks, by audio time, for a replay."""

    def __init__(self, keep_s: float, chunk_s: float) -> None:
        self._chunks: deque[tuple[float, Any]] = deque(maxlen=max(1, int(keep_s / chunk_s)))

    def add(self, t: float, chunk: Any) -> None:
        self._chunks.append((t, chunk))

    def since(self, t0: float) -> list[Any]:
        return [c for t, c in self._chunks if t >= t0]

"""Per-frame costs of single steps of the input path, in isolation (min of 5 repeats, so
robust to other load on the machine): kaiwa's speech gate, WebRTC AGC, audioop's RMS.

    .venv/bin/python -m bench.microbench
"""

from __future__ import annotations

import timeit
import warnings

import numpy as np
from livekit import rtc

from agent.gemini.speech import SpeechGate

FRAMES_PER_S = 50  # 20 ms input frames
SAMPLES = 320  # 20 ms at 16 kHz


def main() -> None:
    pcm = (np.random.default_rng(0).standard_normal(SAMPLES) * 3000).astype(np.int16).tobytes()
    frame = rtc.AudioFrame(pcm, 16000, 1, SAMPLES)
    gate = SpeechGate()
    apm = rtc.AudioProcessingModule(auto_gain_control=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop

    def agc() -> None:
        apm.process_stream(rtc.AudioFrame(pcm, 16000, 1, SAMPLES))

    cases = {
        "SpeechGate.push (kaiwa, numpy RMS)": lambda: gate.push(frame.data, 0.02),
        "audioop.rms (C, for comparison)": lambda: audioop.rms(pcm, 2),
        "AudioProcessingModule AGC (livekit-agents default)": agc,
        "AudioFrame construction (baseline for the AGC line)": lambda: rtc.AudioFrame(
            pcm, 16000, 1, SAMPLES
        ),
    }
    print("| step (one 20 ms frame at 16 kHz) | µs per frame | cores per call (50 frames/s) |")
    print("|---|---|---|")
    for name, fn in cases.items():
        t = min(timeit.repeat(fn, number=2000, repeat=5)) / 2000
        print(f"| {name} | {t * 1e6:.2f} | {t * FRAMES_PER_S:.5f} |")


if __name__ == "__main__":
    main()

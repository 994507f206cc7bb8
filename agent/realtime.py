"""kaiwa's Gemini realtime model: the plugin's model with the gaps we close.

Framework gap (see DESIGN.md): `RealtimeSession` re-chunks input audio into fixed 50 ms
messages (`_bstream`, hard-coded in its constructor). Every byte of user speech therefore
waits up to 50 ms in the plugin before it is sent. We keep the plugin's code path and only
swap that byte stream for one with our chunk size.
"""

from __future__ import annotations

from livekit.agents import utils
from livekit.plugins.google.realtime import realtime_api
from livekit.plugins.google.realtime.realtime_api import (
    INPUT_AUDIO_CHANNELS,
    INPUT_AUDIO_SAMPLE_RATE,
)


class KaiwaRealtimeSession(realtime_api.RealtimeSession):
    def __init__(self, realtime_model: KaiwaRealtimeModel) -> None:
        super().__init__(realtime_model)
        self._bstream = utils.audio.AudioByteStream(
            INPUT_AUDIO_SAMPLE_RATE,
            INPUT_AUDIO_CHANNELS,
            samples_per_channel=INPUT_AUDIO_SAMPLE_RATE * realtime_model.input_chunk_ms // 1000,
        )


class KaiwaRealtimeModel(realtime_api.RealtimeModel):
    """`google.realtime.RealtimeModel` plus kaiwa's session subclass."""

    def __init__(self, *, input_chunk_ms: int = 50, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.input_chunk_ms = input_chunk_ms

    def session(self, *, turn_detection_disabled: bool = False) -> KaiwaRealtimeSession:
        sess = KaiwaRealtimeSession(self)
        self._sessions.add(sess)
        return sess

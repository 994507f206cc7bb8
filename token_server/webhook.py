"""LiveKit webhooks: verify the signature, keep room/participant gauges current."""

from __future__ import annotations

from google.protobuf.json_format import ParseError
from livekit import api
from livekit.protocol.webhook import WebhookEvent

from token_server.errors import ApiError
from token_server.metrics import Metrics

# Events can be missed or repeated; cap the tracked set so memory stays bounded.
_MAX_TRACKED = 100_000


class RoomTracker:
    def __init__(self, api_key: str, api_secret: str, metrics: Metrics) -> None:
        self._receiver = api.WebhookReceiver(api.TokenVerifier(api_key, api_secret))
        self._metrics = metrics
        self._rooms: dict[str, set[str]] = {}  # room sid -> participant sids

    def __repr__(self) -> str:
        return "RoomTracker()"

    def receive(self, body: bytes, authorization: str) -> str:
        """Verify and apply one webhook; returns the event name. Raises ApiError."""
        token = authorization.removeprefix("Bearer ").strip()
        if not token:
            raise ApiError(401, "invalid_signature", "missing webhook Authorization token")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ApiError(400, "invalid_json", "webhook body is not UTF-8") from exc
        try:
            event = self._receiver.receive(text, token)
        except ParseError as exc:  # signed correctly, but not a WebhookEvent
            raise ApiError(400, "invalid_request", "webhook body is not a LiveKit event") from exc
        except Exception as exc:  # bad JWT, wrong key, hash mismatch, bad base64
            raise ApiError(401, "invalid_signature", "webhook signature is not valid") from exc
        self._apply(event)
        return event.event

    def _apply(self, event: WebhookEvent) -> None:
        room_sid = event.room.sid or event.room.name
        if event.event == "room_started" and room_sid:
            if len(self._rooms) < _MAX_TRACKED:
                self._rooms.setdefault(room_sid, set())
        elif event.event == "room_finished":
            self._rooms.pop(room_sid, None)
        elif event.event == "participant_joined" and room_sid:
            participants = self._rooms.get(room_sid)
            if participants is None and len(self._rooms) < _MAX_TRACKED:
                participants = self._rooms.setdefault(room_sid, set())
            if participants is not None and len(participants) < _MAX_TRACKED:
                participants.add(event.participant.sid or event.participant.identity)
        elif event.event in ("participant_left", "participant_connection_aborted"):
            self._rooms.get(room_sid, set()).discard(
                event.participant.sid or event.participant.identity
            )
        self._metrics.rooms.set(len(self._rooms))
        self._metrics.participants.set(sum(len(p) for p in self._rooms.values()))

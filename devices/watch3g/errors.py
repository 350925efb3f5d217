"""Errors of the 3G-watch protocol: a frame that cannot be read, a stream that cannot be framed."""

from __future__ import annotations

from hub.errors import EldercareError


class FrameError(EldercareError):
    """A frame is malformed; `reason` is a short stable code, `detail` says what was wrong.

    `device_id` and `kind` are filled in when the header could be read, so a gateway can
    report the error against the right watch. The message never contains the payload.
    """

    def __init__(self, reason: str, detail: str, *, device_id: str | None = None,
                 kind: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.device_id = device_id
        self.kind = kind


class FrameTooLarge(FrameError):
    """A stream holds an unterminated frame longer than the allowed maximum."""


class BridgeError(EldercareError):
    """A frame could not be handed to the broker; the gateway then leaves alarms un-acknowledged."""

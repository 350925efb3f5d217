"""A message as it arrives from the broker, with the means to acknowledge it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class Inbound:
    """Raw topic and payload; `ack` releases it at the broker once it is safe to lose our copy."""

    topic: str
    payload: bytes
    received: float
    ack: Callable[[], None] | None = None
    critical_hint: bool = False  # guessed from the topic before decoding, to pick the queue
    urgent: bool = False  # SOS, fall, alarm, check-in: ahead of every other message

"""The native topic scheme: <root>/<device type>/<device id>/<message>."""

from __future__ import annotations

import re
from dataclasses import dataclass

from devices.errors import DecodeError

DEVICE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True, slots=True)
class DeviceTopic:
    """The parts of a native device topic."""

    device_type: str
    device_id: str
    message: str


def parse_topic(topic: str, root: str) -> DeviceTopic:
    """Split a native topic, or raise DecodeError('bad_topic')."""
    prefix = root.rstrip("/") + "/"
    if not topic.startswith(prefix):
        raise DecodeError("bad_topic", "topic is outside the native root")
    parts = topic[len(prefix):].split("/")
    if len(parts) != 3 or not all(parts):
        raise DecodeError("bad_topic", "expected <type>/<device id>/<message>")
    device_type, device_id, message = parts
    if not DEVICE_ID.match(device_id):
        raise DecodeError("bad_topic", "device id must be 1-64 of A-Z a-z 0-9 _ -")
    return DeviceTopic(device_type, device_id, message)


def device_topic(root: str, device_type: str, device_id: str, message: str) -> str:
    """Build the topic a device publishes a message on."""
    return f"{root.rstrip('/')}/{device_type}/{device_id}/{message}"

"""Smoke alarm."""

from typing import Any

from devices.device_type import DeviceType, Message
from devices.fields import Bool


def _smoke(data: dict[str, Any]) -> bool:
    return bool(data.get("smoke"))


DEVICE_TYPE = DeviceType(
    key="smoke",
    description="Smoke alarm",
    category="home",
    messages={"state": Message("smoke", (Bool("smoke", required=True),), critical=_smoke),
              "heartbeat": Message("heartbeat")},
)

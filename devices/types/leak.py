"""Water leak sensor."""

from typing import Any

from devices.device_type import DeviceType, Message
from devices.fields import Bool


def _wet(data: dict[str, Any]) -> bool:
    return bool(data.get("leak"))


DEVICE_TYPE = DeviceType(
    key="leak",
    description="Water leak sensor",
    category="home",
    messages={"state": Message("leak", (Bool("leak", required=True),), critical=_wet),
              "heartbeat": Message("heartbeat")},
)

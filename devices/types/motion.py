"""Passive infrared motion sensor, one per room."""

from devices.device_type import DeviceType, Message
from devices.fields import Bool, Num

DEVICE_TYPE = DeviceType(
    key="motion",
    description="PIR motion sensor",
    category="home",
    messages={
        "state": Message("motion", (Bool("motion", required=True), Num("illuminance", 0, 200000))),
        "heartbeat": Message("heartbeat"),
    },
)

"""Bed occupancy pad."""

from devices.device_type import DeviceType, Message
from devices.fields import Bool

DEVICE_TYPE = DeviceType(
    key="bed",
    description="Bed occupancy sensor",
    category="home",
    messages={
        "state": Message("bed", (Bool("occupied", required=True),)),
        "heartbeat": Message("heartbeat"),
    },
)

"""Door or window contact sensor."""

from devices.device_type import DeviceType, Message
from devices.fields import Bool, Choice

DEVICE_TYPE = DeviceType(
    key="door",
    description="Door/window contact; 'exit' placement marks the flat's entrance door",
    category="home",
    messages={
        "state": Message("door", (Choice("contact", frozenset({"open", "closed"}), required=True),)),
        "heartbeat": Message("heartbeat", (Bool("online"),)),
    },
)

"""mmWave presence and fall radar."""

from typing import Any

from devices.device_type import DeviceType, Message
from devices.fields import Bool, Choice, Num


def _falling(data: dict[str, Any]) -> bool:
    return data.get("fall", "none") != "none"


DEVICE_TYPE = DeviceType(
    key="radar",
    description="mmWave radar: presence and fall states none / maybe_fall / fall",
    category="home",
    messages={
        "state": Message(
            "radar",
            (Bool("presence"), Choice("fall", frozenset({"none", "maybe_fall", "fall"})),
             Num("heart_rate", 20, 250, metric="heart_rate"), Num("breath_rate", 2, 80, metric="breath_rate")),
            critical=_falling,
        ),
        "heartbeat": Message("heartbeat"),
    },
)

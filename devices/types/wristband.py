"""SOS wristband / anti-wandering bracelet speaking the native MQTT protocol."""

from devices.device_type import DeviceType
from devices.types._wearable import WEARABLE_MESSAGES

DEVICE_TYPE = DeviceType(
    key="wristband",
    description="SOS wristband with GNSS, accelerometer and heart-rate sensor",
    category="wearable",
    messages=WEARABLE_MESSAGES,
    offline_after_s=10 * 60,  # an SOS device that is silent for minutes cannot call for help
    off_wrist_max_s=2 * 3600,
)

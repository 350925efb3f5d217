"""GPS elder watch on the 3G/4G TCP protocol, bridged to native messages by the watch gateway."""

from devices.device_type import DeviceType
from devices.types._wearable import WEARABLE_MESSAGES

DEVICE_TYPE = DeviceType(
    key="watch3g",
    description="3G/4G GPS elder watch (TCP text protocol via the watch gateway)",
    category="wearable",
    messages=WEARABLE_MESSAGES,
    offline_after_s=20 * 60,  # an SOS device that is silent for minutes cannot call for help
    off_wrist_max_s=2 * 3600,
)

"""Wall or bedside panic button (often Zigbee, via zigbee2mqtt)."""

from devices.device_type import DeviceType, Message

DEVICE_TYPE = DeviceType(
    key="panic_button",
    description="Fixed SOS panic button at the bedside or in the bathroom",
    category="home",
    messages={"sos": Message("sos", critical=True), "heartbeat": Message("heartbeat")},
    offline_after_s=6 * 3600,
)

"""Adapters that bring other MQTT dialects to the native protocol (zigbee2mqtt)."""

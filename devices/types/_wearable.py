"""Messages shared by wearables (native wristbands and bridged 3G watches)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from devices.device_type import Message, finite_floats
from devices.errors import DecodeError
from devices.fields import Bool, Num, read_location
from devices.observation import ImuBatch

MAX_IMU_SAMPLES = 2000
ALARM_NAMES = frozenset({"sos", "fall", "low_battery", "removed", "geofence_exit", "geofence_enter", "power_off"})


def _imu(payload: Mapping[str, Any]) -> dict[str, Any]:
    rate = Num("rate_hz", 1, 1000, required=True).read(payload)
    scale = Num("scale", 1e-6, 1.0).read(payload) or 1.0
    axes = [finite_floats(payload.get(axis), axis, MAX_IMU_SAMPLES) for axis in ("x", "y", "z")]
    if not len(axes[0]) == len(axes[1]) == len(axes[2]):
        raise DecodeError("shape_mismatch", "'x', 'y' and 'z' must have the same length")
    if not axes[0]:
        raise DecodeError("empty", "an IMU batch needs at least one sample")
    samples = np.asarray(axes, dtype=np.float32).T * np.float32(scale)
    assert rate is not None
    return {"imu": ImuBatch(rate, samples), "data": {"rate_hz": rate, "n": len(axes[0])}}


def _location_body(payload: Mapping[str, Any]) -> dict[str, Any]:
    # A location message carries the fix at top level; null lat/lon means "no fix, cells only".
    location = read_location(payload, "location message")
    if location is None:
        return {"data": {"fix": False}}
    return {"location": location, "data": {"fix": True}}


def _alarms(payload: Mapping[str, Any]) -> dict[str, Any]:
    names = payload.get("alarms", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise DecodeError("wrong_type", "'alarms' must be an array of names")
    unknown = set(names) - ALARM_NAMES
    if unknown:
        raise DecodeError("wrong_value", f"unknown alarm names {sorted(unknown)}")
    extra: dict[str, Any] = {"data": {"alarms": sorted(set(names))}}
    last = payload.get("last_known_location")
    if isinstance(last, Mapping):
        known = read_location(last, "last_known_location")
        if known is not None:
            extra["data"]["last_known_location"] = {**known.as_dict(), "ts": last.get("ts")}
    return extra


WEARABLE_MESSAGES: dict[str, Message] = {
    "sos": Message("sos", critical=True, extra=_alarms),
    "fall": Message("fall", (Num("confidence", 0, 1),), critical=True),
    "imu": Message("imu", extra=_imu, status_fields=False),
    "heartbeat": Message("heartbeat", (Bool("worn"), Num("steps", 0, 1e7))),
    "location": Message("location", extra=_location_body),
    "checkin": Message("checkin", critical=True),
    "vitals": Message("vitals", (
        Num("heart_rate", 20, 250, metric="heart_rate"),
        Num("systolic", 50, 260, metric="systolic"),
        Num("diastolic", 30, 160, metric="diastolic"),
        Num("spo2", 50, 100, metric="spo2"),
        Num("temperature", 30, 45, metric="temperature"),
    )),
    "alarm": Message("alarm", critical=True, extra=_alarms),
}

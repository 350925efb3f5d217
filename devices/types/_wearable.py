"""Messages shared by wearables (native wristbands and bridged 3G watches)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from devices.device_type import Message
from devices.errors import DecodeError
from devices.fields import Bool, Num, read_location
from devices.observation import ImuBatch

MAX_IMU_SAMPLES = 2000
_NUMBER_TYPES = frozenset({int, float})
ALARM_NAMES = frozenset({"sos", "fall", "low_battery", "removed", "geofence_exit", "geofence_enter", "power_off"})


def _axis(values: Any, name: str) -> np.ndarray:
    """One axis as float32, checked in one vectorised pass (IMU batches are the bulk of all traffic)."""
    if not isinstance(values, list):
        raise DecodeError("wrong_type", f"'{name}' must be an array of numbers")
    if len(values) > MAX_IMU_SAMPLES:
        raise DecodeError("too_large", f"'{name}' has {len(values)} samples, more than {MAX_IMU_SAMPLES}")
    if not set(map(type, values)) <= _NUMBER_TYPES:  # JSON true/false, strings, nested arrays
        raise DecodeError("wrong_type", f"'{name}' must contain only numbers")
    try:
        array = np.array(values, dtype=np.float64)
    except OverflowError:  # an integer beyond a double's range
        raise DecodeError("out_of_range", f"'{name}' contains a number too large") from None
    if not np.isfinite(array).all():
        raise DecodeError("not_finite", f"'{name}' contains NaN or infinite values")
    return array


def _imu(payload: Mapping[str, Any]) -> dict[str, Any]:
    rate = Num("rate_hz", 1, 1000, required=True).read(payload)
    scale = Num("scale", 1e-6, 1.0).read(payload) or 1.0
    x, y, z = (_axis(payload.get(axis), axis) for axis in ("x", "y", "z"))
    if not len(x) == len(y) == len(z):
        raise DecodeError("shape_mismatch", "'x', 'y' and 'z' must have the same length")
    if not len(x):
        raise DecodeError("empty", "an IMU batch needs at least one sample")
    samples = (np.stack((x, y, z), axis=1) * scale).astype(np.float32)
    assert rate is not None
    return {"imu": ImuBatch(rate, samples), "data": {"rate_hz": rate, "n": len(x)}}


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


SUSPICIONS = frozenset({"second_connection", "impossible_speed"})


def doubt(payload: Mapping[str, Any]) -> dict[str, Any]:
    """`verified: false` and why, as a gateway marks what it does not believe (docs/security-devices.md)."""
    verified = payload.get("verified")
    if verified is None or verified is True:
        return {}
    if verified is not False:
        raise DecodeError("wrong_type", "'verified' must be true or false")
    reasons = payload.get("suspect", [])
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        raise DecodeError("wrong_type", "'suspect' must be an array of names")
    unknown = set(reasons) - SUSPICIONS
    if unknown:
        raise DecodeError("wrong_value", f"unknown suspicions {sorted(unknown)}")
    return {"verified": False, "suspect": sorted(set(reasons))}


def _doubted(extra: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None,
             ) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """A codec hook that also reads the gateway's doubt into the observation's data."""
    def read(payload: Mapping[str, Any]) -> dict[str, Any]:
        out = extra(payload) if extra is not None else {}
        marks = doubt(payload)
        if marks:
            out["data"] = {**out.get("data", {}), **marks}
        return out
    return read


WEARABLE_MESSAGES: dict[str, Message] = {
    "sos": Message("sos", critical=True, extra=_doubted(_alarms)),
    "fall": Message("fall", (Num("confidence", 0, 1),), critical=True, extra=_doubted()),
    "imu": Message("imu", extra=_imu, status_fields=False),
    "heartbeat": Message("heartbeat", (Bool("worn"), Num("steps", 0, 1e7)), extra=_doubted()),
    "location": Message("location", extra=_doubted(_location_body)),
    "checkin": Message("checkin", critical=True),
    "vitals": Message("vitals", (
        Num("heart_rate", 20, 250, metric="heart_rate"),
        Num("systolic", 50, 260, metric="systolic"),
        Num("diastolic", 30, 160, metric="diastolic"),
        Num("spo2", 50, 100, metric="spo2"),
        Num("temperature", 30, 45, metric="temperature"),
    ), extra=_doubted()),
    "alarm": Message("alarm", critical=True, extra=_doubted(_alarms)),
}

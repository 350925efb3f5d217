"""Which device observations raise which alerts (detectors add their own triggers)."""

from __future__ import annotations

from typing import Any

from alerts.model import ALERT_TYPES, Binding, Trigger
from devices.observation import Observation

LOW_BATTERY_PERCENT = 15.0
_ALARM_TO_ALERT = {
    "low_battery": "low_battery",
    "removed": "device_removed",
    "geofence_exit": "wandering",
    "power_off": "power_off",
    "sos": "sos",
    "fall": "fall",
}


def _trigger(kind: str, obs: Observation, binding: Binding, details: dict[str, Any]) -> Trigger:
    assert binding.resident_id and binding.household_id and binding.region_path
    location = obs.location.as_dict() if obs.location else None
    return Trigger(
        type=kind,
        severity=ALERT_TYPES[kind],
        ts=obs.ts,
        resident_id=binding.resident_id,
        household_id=binding.household_id,
        region_path=binding.region_path,
        source_device=obs.device_id,
        location=location,
        details={"device_type": binding.device_type, "room": binding.room, **details},
    )


def triggers_for(obs: Observation, binding: Binding) -> list[Trigger]:
    """Alerts that one observation raises by itself."""
    if binding.resident_id is None or binding.household_id is None:
        return []
    out: list[Trigger] = []
    data = obs.data
    if obs.kind == "sos":
        details: dict[str, Any] = {"location_known": obs.location is not None}
        if "last_known_location" in data:
            details["last_known_location"] = data["last_known_location"]
        out.append(_trigger("sos", obs, binding, details))
        out += _alarm_triggers(obs, binding, exclude={"sos"})  # an SOS never hides, nor is hidden by, other bits
    elif obs.kind == "fall":
        out.append(_trigger("fall", obs, binding, {"source": "device", "confidence": data.get("confidence")}))
    elif obs.kind == "alarm":
        out += _alarm_triggers(obs, binding, exclude=set())
    elif obs.kind == "radar" and data.get("fall") in {"fall", "maybe_fall"}:
        kind = "fall" if data["fall"] == "fall" else "possible_fall"
        out.append(_trigger(kind, obs, binding, {"source": "radar", "state": data["fall"]}))
    elif obs.kind == "smoke" and data.get("smoke"):
        out.append(_trigger("smoke", obs, binding, {}))
    elif obs.kind == "leak" and data.get("leak"):
        out.append(_trigger("water_leak", obs, binding, {}))
    battery = obs.status.get("battery")
    if obs.status.get("battery_low") or (battery is not None and battery < LOW_BATTERY_PERCENT):
        out.append(_trigger("low_battery", obs, binding, {"battery": battery}))
    if obs.status.get("tamper"):
        out.append(_trigger("tamper", obs, binding, {}))
    return out


def _alarm_triggers(obs: Observation, binding: Binding, exclude: set[str]) -> list[Trigger]:
    """One alert per alarm bit the device reported."""
    out = []
    for name in obs.data.get("alarms", []):
        kind = _ALARM_TO_ALERT.get(name)
        if kind and name not in exclude:
            out.append(_trigger(kind, obs, binding, {"alarm": name}))
    return out

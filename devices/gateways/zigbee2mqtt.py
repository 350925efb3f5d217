"""zigbee2mqtt: friendly-name topics and zigbee2mqtt's own payload fields, translated to native messages."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from devices.device_type import parse_json_object
from devices.errors import DecodeError

PANIC_ACTIONS = frozenset({"emergency", "sos", "panic"})
_FALL_STATES = {"none": "none", "normal": "none", "no_fall": "none", "maybe_fall": "maybe_fall",
                "suspected_fall": "maybe_fall", "fall": "fall", "falling": "fall", "fall_down": "fall"}
_IGNORED_SUFFIXES = ("/set", "/get")


@dataclass(frozen=True, slots=True)
class Z2mTopic:
    """What a zigbee2mqtt topic refers to: a friendly name (may contain '/') and whether it is availability."""

    friendly_name: str
    availability: bool


def parse_topic(topic: str, base: str) -> Z2mTopic | None:
    """Split a zigbee2mqtt topic; None for bridge messages and commands the hub ignores."""
    prefix = base.rstrip("/") + "/"
    if not topic.startswith(prefix):
        return None
    rest = topic[len(prefix):]
    if not rest or rest.startswith("bridge/") or rest.endswith(_IGNORED_SUFFIXES):
        return None
    if rest.endswith("/availability"):
        return Z2mTopic(rest[: -len("/availability")], True)
    return Z2mTopic(rest, False)


def _availability(raw: bytes) -> dict[str, Any]:
    # Legacy payload is the bare word; current zigbee2mqtt sends {"state": "online"}.
    text = raw.decode("utf-8", errors="replace").strip()
    if text in {"online", "offline"}:
        return {"state": text}
    body = parse_json_object(raw)
    state = body.get("state")
    if state not in {"online", "offline"}:
        raise DecodeError("wrong_value", "zigbee2mqtt availability must be online or offline")
    return {"state": state}


def _status(body: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("battery", "battery_low", "tamper"):
        if key in body and body[key] is not None:
            out[key] = body[key]
    lq = body.get("linkquality")
    # An int is always finite (math.isfinite would overflow on one beyond a double's range); min/max
    # compare it exactly.
    if isinstance(lq, int | float) and not isinstance(lq, bool) and (isinstance(lq, int) or math.isfinite(lq)):
        out["signal"] = round(float(max(0.0, min(255.0, lq))) / 2.55, 1)  # 0-255 → percent
    return out


def _fall_state(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "fall" if value else "none"
    state = _FALL_STATES.get(str(value).strip().lower())
    if state is None:
        raise DecodeError("wrong_value", f"unknown fall_down_status {str(value)[:20]!r}")
    return state


def translate(device_type: str, topic: Z2mTopic, raw: bytes, received_s: float) -> tuple[str, bytes]:
    """A native (message suffix, payload) for a zigbee2mqtt message about a device of `device_type`."""
    # zigbee2mqtt messages carry no id: the content and the second it arrived identify one.
    msg_id = hashlib.sha1(raw + str(int(received_s)).encode(), usedforsecurity=False).hexdigest()[:20]
    native: dict[str, Any] = {"v": 1, "id": msg_id, "ts": received_s}
    if topic.availability:
        native.update(_availability(raw))
        return "availability", _dump(native)
    body = parse_json_object(raw)
    native.update(_status(body))
    action = body.get("action")
    if isinstance(action, str) and action.lower() in PANIC_ACTIONS:
        return "sos", _dump(native)
    state: dict[str, Any] = {}
    if device_type == "door" and "contact" in body:
        contact = body["contact"]
        if not isinstance(contact, bool):
            raise DecodeError("wrong_type", "'contact' must be true (closed) or false (open)")
        state["contact"] = "closed" if contact else "open"
    elif device_type == "motion" and "occupancy" in body:
        state["motion"] = body["occupancy"]
    elif device_type == "bed" and "occupancy" in body:
        state["occupied"] = body["occupancy"]
    elif device_type == "radar":
        presence = body.get("presence", body.get("occupancy"))
        if presence is not None:
            state["presence"] = presence
        fall = _fall_state(body.get("fall_down_status", body.get("fall_down_state")))
        if fall is not None:
            state["fall"] = fall
    elif device_type == "leak" and "water_leak" in body:
        state["leak"] = body["water_leak"]
    elif device_type == "smoke" and "smoke" in body:
        state["smoke"] = body["smoke"]
    native.update(state)
    return ("state" if state else "heartbeat"), _dump(native)


def _dump(native: dict[str, Any]) -> bytes:
    return json.dumps(native, separators=(",", ":")).encode()

"""A device type: the messages it sends, declared as data, and the one decoder that reads them."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from devices.errors import DecodeError
from devices.fields import COMMON_STATUS, Choice, Spec, read_fields, read_location, read_timestamp
from devices.observation import CRITICAL_KINDS, Observation

Extra = Callable[[Mapping[str, Any]], dict[str, Any]]
_STATUS_KEYS = ("battery", "signal", "worn", "tamper", "battery_low")


def _no_extra(_: Mapping[str, Any]) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Message:
    """One message a device sends on `<root>/<type>/<id>/<suffix>`, decoded into one observation."""

    kind: str
    fields: tuple[Spec, ...] = ()
    critical: bool | Callable[[dict[str, Any]], bool] = False
    extra: Extra = _no_extra  # reads structured parts (location, IMU arrays) into Observation fields
    status_fields: bool = True  # battery/tamper/signal may ride along

    def is_critical(self, data: dict[str, Any]) -> bool:
        """Critical kinds always are; others may be by content (smoke=true)."""
        if self.kind in CRITICAL_KINDS:
            return True
        return self.critical(data) if callable(self.critical) else self.critical


AVAILABILITY = Message("availability", (Choice("state", frozenset({"online", "offline"}), required=True),),
                       status_fields=False)


@dataclass(frozen=True)
class DeviceType:
    """What a kind of device is and the messages it may send."""

    key: str
    description: str
    category: str  # "wearable" or "home"
    messages: Mapping[str, Message]
    offline_after_s: float = 3 * 3600  # silence after which the device counts as offline
    off_wrist_max_s: float | None = None  # wearables: how long "not worn" may last before an alert

    def message(self, suffix: str) -> Message:
        """The declared message for a topic suffix."""
        if suffix == "availability":
            return AVAILABILITY
        try:
            return self.messages[suffix]
        except KeyError:
            raise DecodeError("unknown_message", f"{self.key} devices do not send '{suffix}'") from None

    def decode(self, device_id: str, suffix: str, raw: bytes, now: datetime, max_skew_s: float) -> Observation:
        """Parse and validate one payload into an observation, or raise DecodeError."""
        message = self.message(suffix)
        payload = parse_json_object(raw)
        version = payload.get("v")
        if version != 1:
            raise DecodeError("bad_version", f"'v' must be 1, got {version!r}")
        msg_id = payload.get("id")
        if msg_id is None and message.kind == "availability":
            # Last wills are composed at connect time and carry no id; the state is the identity.
            msg_id = f"availability-{payload.get('state')}"
        if not isinstance(msg_id, str | int) or isinstance(msg_id, bool) or not 0 < len(str(msg_id)) <= 64:
            raise DecodeError("missing_id", "'id' must be a string of 1-64 characters")
        declared = payload.get("device")
        if declared is not None and declared != device_id:
            raise DecodeError("device_mismatch", "payload 'device' differs from the topic's device id")
        ts = read_timestamp(payload, now, max_skew_s)
        specs = message.fields + (COMMON_STATUS if message.status_fields else ())
        data = read_fields(payload, specs)
        extra = message.extra(payload)  # noqa: S610 - not SQL: structured parts a codec read (imu)
        status = {k: data[k] for k in _STATUS_KEYS if k in data}
        if message.kind == "availability":
            status["online"] = data["state"] == "online"
        readings: tuple[tuple[str, float], ...] = tuple(
            (metric, float(data[spec.name]))
            for spec in specs
            if (metric := getattr(spec, "metric", None)) and spec.name in data
        )
        location = extra.pop("location", None) or read_location(payload.get("location"))
        return Observation(
            device_id=device_id,
            kind=message.kind,
            ts=ts,
            msg_id=str(msg_id),
            critical=message.is_critical(data),
            data={**data, **extra.pop("data", {})},
            readings=readings,
            status=status,
            location=location,
            **extra,
        )


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """A JSON object with no NaN/Infinity literals, or DecodeError."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError("not_utf8", "payload is not UTF-8") from None

    def reject_constant(name: str) -> float:
        raise DecodeError("not_finite", f"payload contains {name}")

    try:
        value = json.loads(text, parse_constant=reject_constant)
    except json.JSONDecodeError as err:
        raise DecodeError("malformed_json", f"{err.msg} at line {err.lineno} column {err.colno}") from None
    except RecursionError:
        raise DecodeError("malformed_json", "nesting too deep") from None
    if not isinstance(value, dict):
        raise DecodeError("malformed_json", "payload must be a JSON object")
    return value


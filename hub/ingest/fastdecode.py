"""A quicker road through `DeviceType.decode` for well-formed messages; anything unusual takes the full one.

Decoding is the largest part of the per-message cost. The checks themselves are cheap; the overhead
around them is not (a new JSON decoder per message, the field list assembled per message, the
generic timestamp reader). This path reuses one decoder and a per-(type, message) plan, runs the
same field specs and codec hooks, and hands any payload it would have to think about — NaN,
non-string ids, ISO or missing timestamps near the skew limit, availability messages, any
DecodeError — to `DeviceType.decode`, so errors and their reasons are exactly the codec's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from devices.device_type import DeviceType, Message
from devices.errors import DecodeError
from devices.fields import COMMON_STATUS, Spec, read_location
from devices.observation import Observation
from hub.plugins import Registry

_STATUS_KEYS = ("battery", "signal", "worn", "tamper", "battery_low")
_TS_MIN, _TS_MAX = 946684800, 4102444800  # the plausible unix times devices.fields accepts


class _Unusual(Exception):
    """Raised inside the fast path: let the full decoder handle (and explain) this payload."""


def _reject_constant(_name: str) -> float:
    raise _Unusual


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


@dataclass(frozen=True)
class _Plan:
    """What one (device type, message suffix) reads, worked out once."""

    message: Message
    specs: tuple[Spec, ...]
    metrics: tuple[tuple[str, str], ...]  # (metric, field name)


class FastDecoder:
    """`decode` gives the same Observation (or DecodeError) as the device type's own decoder."""

    def __init__(self, types: Registry[DeviceType]) -> None:
        self._types = types
        self._plans: dict[tuple[str, str], _Plan | None] = {}

    def _plan(self, dtype: DeviceType, suffix: str) -> _Plan | None:
        key = (dtype.key, suffix)
        if key not in self._plans:
            plan = None
            if suffix != "availability" and suffix in dtype.messages:  # the rest is rare: full decoder
                message = dtype.messages[suffix]
                specs = message.fields + (COMMON_STATUS if message.status_fields else ())
                metrics = tuple((m, s.name) for s in specs if (m := getattr(s, "metric", None)))
                plan = _Plan(message, specs, metrics)
            self._plans[key] = plan
        return self._plans[key]

    def decode(self, device_type: str, device_id: str, suffix: str, raw: bytes, now: datetime,
               max_skew_s: float) -> Observation:
        """Parse and validate one payload into an observation, or raise DecodeError."""
        dtype = self._types.get(device_type)
        plan = self._plan(dtype, suffix)
        if plan is not None:
            try:
                return self._fast(plan, device_id, raw, now, max_skew_s)
            except (_Unusual, DecodeError, ValueError, TypeError, RecursionError):
                pass
        return dtype.decode(device_id, suffix, raw, now, max_skew_s)

    @staticmethod
    def _fast(plan: _Plan, device_id: str, raw: bytes, now: datetime, max_skew_s: float) -> Observation:
        payload = _DECODER.decode(raw.decode("utf-8"))
        if type(payload) is not dict or payload.get("v") != 1:
            raise _Unusual
        msg_id = payload.get("id")
        if type(msg_id) is not str or not 0 < len(msg_id) <= 64:
            raise _Unusual
        declared = payload.get("device")
        if declared is not None and declared != device_id:
            raise _Unusual
        raw_ts = payload.get("ts")
        if type(raw_ts) is not float and type(raw_ts) is not int:
            raise _Unusual
        if not _TS_MIN <= raw_ts <= _TS_MAX:
            raise _Unusual
        ts = datetime.fromtimestamp(raw_ts, UTC)
        if (ts - now).total_seconds() > max_skew_s:
            raise _Unusual
        message = plan.message
        data: dict[str, Any] = {}
        for spec in plan.specs:  # read_fields, minus the calls for optional fields that are absent
            if spec.name in payload:
                value = spec.read(payload)
                if value is not None:
                    data[spec.name] = value
            elif spec.required:
                raise _Unusual
        extra = message.extra(payload)  # noqa: S610 - not SQL: structured parts a codec read (imu)
        location = extra.pop("location", None) or read_location(payload.get("location"))
        return Observation(
            device_id=device_id,
            kind=message.kind,
            ts=ts,
            msg_id=msg_id,
            critical=message.is_critical(data),
            data={**data, **extra.pop("data", {})},
            readings=tuple((metric, float(data[name])) for metric, name in plan.metrics if name in data),
            status={k: data[k] for k in _STATUS_KEYS if k in data},
            location=location,
            **extra,
        )


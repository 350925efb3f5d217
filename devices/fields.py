"""Declarative payload fields: each device type lists what it reads, the checks live here once."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from devices.errors import DecodeError
from devices.observation import Location


def as_float(value: int | float, name: str) -> float:
    """A JSON number as a float; integers beyond a double's range are refused, not an OverflowError."""
    try:
        return float(value)
    except OverflowError:
        raise DecodeError("out_of_range", f"'{name}' is too large") from None


@dataclass(frozen=True)
class Num:
    """A finite number within [lo, hi]."""

    name: str
    lo: float = -math.inf
    hi: float = math.inf
    required: bool = False
    metric: str | None = None  # stored as a reading under this name when present

    def read(self, payload: Mapping[str, Any]) -> float | None:
        """Validated value or None when absent and optional."""
        value = payload.get(self.name)
        if value is None:
            if self.required:
                raise DecodeError("missing_field", f"'{self.name}' is required")
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise DecodeError("wrong_type", f"'{self.name}' must be a number")
        number = as_float(value, self.name)
        if not math.isfinite(number):
            raise DecodeError("not_finite", f"'{self.name}' is NaN or infinite")
        if not self.lo <= number <= self.hi:
            raise DecodeError("out_of_range", f"'{self.name}'={number} outside [{self.lo}, {self.hi}]")
        return number


@dataclass(frozen=True)
class Bool:
    """A JSON boolean."""

    name: str
    required: bool = False

    def read(self, payload: Mapping[str, Any]) -> bool | None:
        """Validated value or None when absent and optional."""
        value = payload.get(self.name)
        if value is None:
            if self.required:
                raise DecodeError("missing_field", f"'{self.name}' is required")
            return None
        if not isinstance(value, bool):
            raise DecodeError("wrong_type", f"'{self.name}' must be true or false")
        return value


@dataclass(frozen=True)
class Choice:
    """One of a fixed set of strings."""

    name: str
    choices: frozenset[str]
    required: bool = False

    def read(self, payload: Mapping[str, Any]) -> str | None:
        """Validated value or None when absent and optional."""
        value = payload.get(self.name)
        if value is None:
            if self.required:
                raise DecodeError("missing_field", f"'{self.name}' is required")
            return None
        if not isinstance(value, str) or value not in self.choices:
            raise DecodeError("wrong_value", f"'{self.name}' must be one of {sorted(self.choices)}")
        return value


Spec = Num | Bool | Choice

# Every sensor may report these alongside its own fields.
COMMON_STATUS: tuple[Spec, ...] = (
    Num("battery", 0, 100, metric="battery"),
    Bool("battery_low"),
    Bool("tamper"),
    Num("signal", -150, 100, metric="signal"),
)


def read_fields(payload: Mapping[str, Any], specs: tuple[Spec, ...]) -> dict[str, Any]:
    """Read every declared field; absent optional ones are left out."""
    out: dict[str, Any] = {}
    for spec in specs:
        value = spec.read(payload)
        if value is not None:
            out[spec.name] = value
    return out


def read_timestamp(payload: Mapping[str, Any], now: datetime, max_skew_s: float) -> datetime:
    """The observation time: unix seconds or ISO 8601; absent means now; far future is refused."""
    raw = payload.get("ts")
    if raw is None:
        return now
    if isinstance(raw, bool):
        raise DecodeError("wrong_type", "'ts' must be unix seconds or ISO 8601")
    if isinstance(raw, int | float):
        raw = as_float(raw, "ts")
        if not math.isfinite(raw):
            raise DecodeError("not_finite", "'ts' is NaN or infinite")
        if not 946684800 <= raw <= 4102444800:  # 2000-01-01 .. 2100-01-01
            raise DecodeError("bad_timestamp", f"'ts'={raw} is not a plausible unix time")
        ts = datetime.fromtimestamp(raw, UTC)
    elif isinstance(raw, str):
        try:
            ts = datetime.fromisoformat(raw)
        except ValueError:
            raise DecodeError("bad_timestamp", "'ts' is not ISO 8601") from None
        if ts.tzinfo is None:
            raise DecodeError("bad_timestamp", "'ts' needs a UTC offset")
        try:
            ts = ts.astimezone(UTC)
        except OverflowError:  # year 1 or 9999 shifted past the calendar's end by its offset
            raise DecodeError("bad_timestamp", "'ts' is outside the calendar") from None
    else:
        raise DecodeError("wrong_type", "'ts' must be unix seconds or ISO 8601")
    if (ts - now).total_seconds() > max_skew_s:
        raise DecodeError("future_timestamp", f"'ts' is {(ts - now).total_seconds():.0f} s in the future")
    return ts


def read_location(value: Any, name: str = "location") -> Location | None:
    """A {lat, lon, acc_m, src} object, or None when absent or null (no fix)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise DecodeError("wrong_type", f"'{name}' must be an object or null")
    if value.get("lat") is None and value.get("lon") is None:
        return None
    lat = Num("lat", -90, 90, required=True).read(value)
    lon = Num("lon", -180, 180, required=True).read(value)
    acc = Num("acc_m", 0, 1e6).read(value)
    src = Choice("src", frozenset({"gnss", "cell", "wifi"})).read(value) or "gnss"
    assert lat is not None and lon is not None
    return Location(lat, lon, acc, src)

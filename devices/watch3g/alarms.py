"""The status word of UD/AL frames: every bit decoded, alarms never masked by conditions."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

ALARM_NAMES = frozenset(
    {"sos", "fall", "low_battery", "removed", "geofence_exit", "geofence_enter", "power_off"}
)


@dataclass(frozen=True, slots=True)
class StatusBit:
    """One bit of the status word: its flag name and, for alarm bits, the normalised alarm."""

    bit: int
    flag: str
    alarm: str | None
    meaning: str


# Low 16 bits are conditions, high 16 bits are events (vendor appendix "Device status").
# Bit 14 is not in the vendor table; Traccar reads it as a power-cut alarm, so do we.
# Bit 22 is "abnormal heart rate" in the vendor table while Traccar reads it as a fall: we keep
# the vendor meaning as a flag only; the bridge still reports an AL frame carrying it (see docs).
STATUS_BITS: tuple[StatusBit, ...] = (
    StatusBit(0, "low_battery_state", None, "battery is low (condition)"),
    StatusBit(1, "outside_geofence", None, "outside a geofence (condition)"),
    StatusBit(2, "inside_geofence", None, "inside a geofence (condition)"),
    StatusBit(3, "watch_state", None, "vendor 'watch state'; meaning differs per firmware"),
    StatusBit(4, "stationary", None, "device is not moving (condition)"),
    StatusBit(14, "power_off", "power_off", "watch is switching off / power cut"),
    StatusBit(16, "sos", "sos", "SOS button pressed"),
    StatusBit(17, "low_battery", "low_battery", "low battery alarm"),
    StatusBit(18, "geofence_exit", "geofence_exit", "left a geofence"),
    StatusBit(19, "geofence_enter", "geofence_enter", "entered a geofence"),
    StatusBit(20, "removed", "removed", "watch taken off the wrist"),
    StatusBit(21, "fall", "fall", "fall detected"),
    StatusBit(22, "heart_rate_abnormal", None, "abnormal heart rate (vendor table)"),
)
_BY_BIT = {b.bit: b for b in STATUS_BITS}
_BY_FLAG = {b.flag: b for b in STATUS_BITS}
_BY_ALARM = {b.alarm: b for b in STATUS_BITS if b.alarm}
MAX_STATUS = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class StatusWord:
    """A decoded status word: every set bit lands in `flags` or `unknown_bits`, none is dropped."""

    value: int
    flags: frozenset[str]
    alarms: frozenset[str]
    unknown_bits: tuple[int, ...]

    @property
    def has_alarm_bits(self) -> bool:
        """True when any bit of the event half (16-31) or bit 14 is set, recognised or not."""
        return bool(self.value & 0xFFFF4000)


def decode_status(value: int) -> StatusWord:
    """Decode all 32 bits; each set bit is examined independently of the others."""
    if not 0 <= value <= MAX_STATUS:
        raise ValueError("status word must fit in 32 bits")
    flags: set[str] = set()
    alarms: set[str] = set()
    unknown: list[int] = []
    for bit in range(32):
        if not value >> bit & 1:
            continue
        known = _BY_BIT.get(bit)
        if known is None:
            unknown.append(bit)
            continue
        flags.add(known.flag)
        if known.alarm:
            alarms.add(known.alarm)
    return StatusWord(value, frozenset(flags), frozenset(alarms), tuple(unknown))


def parse_status(text: str) -> StatusWord:
    """Decode the hex status field (1-8 hex digits; old firmware sends 4), or raise ValueError."""
    if not 1 <= len(text) <= 8 or any(c not in "0123456789abcdefABCDEF" for c in text):
        raise ValueError("status must be 1-8 hex digits")
    return decode_status(int(text, 16))


def encode_status(alarms: Iterable[str] = (), flags: Iterable[str] = ()) -> int:
    """Build a status word from normalised alarm names and/or flag names (for simulators, tests)."""
    value = 0
    for name in alarms:
        if name not in _BY_ALARM:
            raise ValueError(f"unknown alarm {name!r}")
        value |= 1 << _BY_ALARM[name].bit
    for name in flags:
        if name not in _BY_FLAG:
            raise ValueError(f"unknown status flag {name!r}")
        value |= 1 << _BY_FLAG[name].bit
    return value

"""Normalised home-sensor events and the alert triggers the home detectors emit."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from hub.errors import EldercareError

AlertType = Literal[
    "inactivity", "not_home", "no_morning_activity", "night_door", "long_bathroom", "missed_checkin"
]
Severity = Literal["critical", "high", "medium", "low"]

#: Kinds the detectors understand; anything else is kept but only counts as activity when "on".
KNOWN_KINDS = frozenset({"motion", "door", "bed", "item", "checkin", "light", "environment", "other"})

# What a provisioned room name says about the place; free text from installers, so matched by words.
_ROOM_ROLES = (
    ("bathroom", ("bath", "toilet", "wc", "restroom", "shower")),
    ("bedroom", ("bed",)),
    ("entrance", ("entrance", "entry", "front_door", "frontdoor", "exit", "porch")),
    ("kitchen", ("kitchen",)),
    ("living", ("living", "lounge", "sitting")),
)
_NON_LETTERS = re.compile(r"[^a-z_]")


def room_role(room: str) -> str:
    """The role of a provisioned room (bedroom, bathroom, entrance, kitchen, living or other)."""
    lowered = _NON_LETTERS.sub("", room.lower().replace(" ", "_").replace("-", "_"))
    for role, words in _ROOM_ROLES:
        if any(word in lowered for word in words):
            return role
    return "other"

_STATE_ALIASES = {
    "on": "on",
    "onc": "on",
    "present": "on",
    "off": "off",
    "offc": "off",
    "absent": "off",
    "open": "open",
    "opened": "open",
    "close": "closed",
    "closed": "closed",
    "occupied": "occupied",
    "vacant": "vacant",
    "press": "press",
    "pressed": "press",
}
# Contact sensors mapped as doors may still report ON/OFF; "on" means the magnet is apart.
_DOOR_STATES = {"on": "open", "off": "closed"}
_BED_STATES = {"on": "occupied", "off": "vacant"}


class DetectionError(EldercareError):
    """A home-detection input (snapshot, profile row, event) cannot be used."""


def normalise_state(raw: str, kind: str = "motion") -> str:
    """Map a raw sensor state (ON, OPEN, CLOSE, ...) to the lower-case vocabulary used here."""
    state = _STATE_ALIASES.get(raw.strip().lower(), raw.strip().lower())
    if kind == "door":
        return _DOOR_STATES.get(state, state)
    if kind == "bed":
        return _BED_STATES.get(state, state)
    return state


@dataclass(frozen=True, slots=True)
class HomeEvent:
    """One sensor report: when, which sensor, what kind, in which room, whether it guards an exit."""

    ts: datetime
    sensor: str
    kind: str
    room: str = ""
    exit: bool = False
    state: str = "on"

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", normalise_state(self.state, self.kind))

    @property
    def is_activity(self) -> bool:
        """True when the event shows a person moving or touching something."""
        if self.kind == "environment":
            return False
        if self.kind in ("door", "bed", "item", "checkin"):
            # Item sensors (cupboards, appliances, flush, seats) report a touch by either edge.
            return True
        # A PIR "off" is its hold timer expiring, not a movement.
        return self.state in ("on", "open", "press", "occupied")


@dataclass(frozen=True)
class AlertTrigger:
    """What a detector wants the alert engine to raise; details hold sensor/room names and numbers only."""

    type: AlertType
    severity: Severity
    ts: datetime
    details: dict[str, Any] = field(default_factory=dict, hash=False)

    def to_json(self) -> dict[str, Any]:
        """Return the JSON-able form printed by the replay tool and persisted by the hub."""
        return {
            "ts": self.ts.isoformat(),
            "type": self.type,
            "severity": self.severity,
            "details": self.details,
        }


def local_clock(ts: datetime, timezone: str | None) -> datetime:
    """Return the resident's naive local wall-clock time for ``ts`` (naive input is already local)."""
    if timezone is None or ts.tzinfo is None:
        return ts.replace(tzinfo=None)
    return ts.astimezone(ZoneInfo(timezone)).replace(tzinfo=None)


def in_daily_window(t: time, start: time, end: time) -> bool:
    """True when wall-clock ``t`` lies in [start, end), where the window may wrap past midnight."""
    if start <= end:
        return start <= t < end
    return t >= start or t < end


def at_local(day: date, t: time) -> datetime:
    """Return the naive local datetime for ``t`` on ``day``."""
    return datetime.combine(day, t)


def iso_or_none(ts: datetime | None) -> str | None:
    """Serialise an optional datetime for a snapshot."""
    return None if ts is None else ts.isoformat()


def parse_iso_or_none(value: object) -> datetime | None:
    """Read back an optional datetime written by :func:`iso_or_none`."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise DetectionError(f"expected an ISO timestamp, got {type(value).__name__}")
    try:
        return datetime.fromisoformat(value)
    except ValueError as err:
        raise DetectionError(f"bad timestamp in snapshot: {value!r}") from err


def minutes(delta: timedelta) -> float:
    """Return a timedelta in minutes."""
    return delta.total_seconds() / 60.0

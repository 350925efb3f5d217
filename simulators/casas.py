"""Reads CASAS sensor logs (space-separated originals and CIL tab-separated files) into HomeEvents."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from hub.detection.home_events import KNOWN_KINDS, HomeEvent
from hub.errors import EldercareError

_STATES = {"ON", "OFF", "OPEN", "CLOSE", "CLOSED", "ONC", "OFFC", "PRESENT", "ABSENT", "OCCUPIED", "VACANT"}
_DOOR_STATES = {"OPEN", "CLOSE", "CLOSED"}
_NUMBER = re.compile(r"^[-+]?\d+(\.\d+)?$")
# Room words at the start of CIL names such as BathroomAToilet or LivingRoomAChair; an optional
# single capital that follows is the room's letter (BedroomA vs BedroomB).
_ROOM = re.compile(
    r"^((?:Main)?(?:Bedroom|Bathroom|Kitchen|LivingRoom|DiningRoom|Office|Hallway|Entryway|Laundry|"
    r"Garage|Closet|Study|Toilet|Lounge|Porch))([A-Z](?![a-z]))?"
)
_EXIT_WORDS = ("door", "entry", "exit")
# CIL's BedroomADoor is a motion area by an inner door: a name that also names an inner room is
# not an exit, or every walk to bed would look like leaving home.
_INNER_WORDS = ("bedroom", "bathroom", "kitchen", "office", "closet", "hallway", "living", "dining", "toilet")


class LogFormatError(EldercareError):
    """A line of a CASAS log, or a sensor map, cannot be read."""


@dataclass(frozen=True, slots=True)
class SensorSpec:
    """What a sensor is: its kind, its room and whether it guards an exit of the home."""

    kind: str
    room: str
    exit: bool


@dataclass(frozen=True, slots=True)
class RawLine:
    """One parsed log line before the sensor map is applied."""

    ts: datetime
    sensor: str
    state: str
    location: str


def _parse_ts(date_part: str, time_part: str) -> datetime:
    try:
        return datetime.fromisoformat(f"{date_part} {time_part}")
    except ValueError as err:
        raise LogFormatError(f"bad timestamp {date_part} {time_part!r}") from err


def _is_state(token: str) -> bool:
    return token.upper() in _STATES or bool(_NUMBER.match(token))


def parse_line(line: str) -> RawLine | None:
    """Parse one line of either format; None for blank lines, LogFormatError when malformed."""
    text = line.strip()
    if not text:
        return None
    if "\t" in text:
        fields = [f.strip() for f in text.split("\t")]
        if len(fields) < 3 or not fields[1] or not fields[2]:
            raise LogFormatError("expected 'timestamp<TAB>sensor<TAB>state'")
        parts = fields[0].split()
        if len(parts) != 2:
            raise LogFormatError(f"bad timestamp {fields[0]!r}")
        ts = _parse_ts(parts[0], parts[1])
        if not _is_state(fields[2]):
            raise LogFormatError(f"unknown state {fields[2]!r}")
        return RawLine(ts, fields[1], fields[2], "")
    tokens = text.split()
    if len(tokens) < 4:
        raise LogFormatError("expected 'date time sensor [location] state [label]'")
    ts = _parse_ts(tokens[0], tokens[1])
    if _is_state(tokens[3]):
        return RawLine(ts, tokens[2], tokens[3], "")
    if len(tokens) >= 5 and _is_state(tokens[4]):
        return RawLine(ts, tokens[2], tokens[4], tokens[3])
    raise LogFormatError(f"no known state after sensor {tokens[2]!r}")


def default_spec(sensor: str, state: str, location: str = "") -> SensorSpec:
    """Guess a sensor's kind, room and exit flag from its name when no map is given."""
    upper = state.upper()
    if _NUMBER.match(state):
        kind = "environment"
    elif upper in _DOOR_STATES:
        kind = "door"
    else:
        kind = "motion"
    match = _ROOM.match(sensor)
    room = location or (match.group(1) + (match.group(2) or "") if match else "")
    lowered = f"{sensor} {location}".lower()
    exit_flag = any(w in lowered for w in _EXIT_WORDS) and not any(w in lowered for w in _INNER_WORDS)
    return SensorSpec(kind, room, exit_flag)


def load_sensor_map(path: Path) -> dict[str, SensorSpec]:
    """Read MAP.json: ``{"Sensor": {"kind": ..., "room": ..., "exit": bool}}``."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise LogFormatError(f"cannot read sensor map {path}: {err}") from err
    if not isinstance(raw, dict):
        raise LogFormatError("sensor map must be a JSON object keyed by sensor name")
    out: dict[str, SensorSpec] = {}
    for name, spec in raw.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("kind"), str):
            raise LogFormatError(f"sensor map entry {name!r} needs a 'kind'")
        if spec["kind"] not in KNOWN_KINDS:
            raise LogFormatError(f"sensor map entry {name!r}: unknown kind {spec['kind']!r}")
        out[name] = SensorSpec(spec["kind"], str(spec.get("room", "")), bool(spec.get("exit", False)))
    return out


def read_events(
    lines: Iterable[str],
    sensor_map: dict[str, SensorSpec] | None = None,
    on_error: Callable[[int, str], None] | None = None,
) -> Iterator[HomeEvent]:
    """Yield HomeEvents from log lines; malformed lines go to ``on_error(line_no, reason)``, skipped."""
    for line_no, line in enumerate(lines, start=1):
        try:
            raw = parse_line(line)
        except LogFormatError as err:
            if on_error is not None:
                on_error(line_no, str(err))
            continue
        if raw is None:
            continue
        spec = (sensor_map or {}).get(raw.sensor) or default_spec(raw.sensor, raw.state, raw.location)
        yield HomeEvent(raw.ts, raw.sensor, spec.kind, spec.room, spec.exit, raw.state)


def read_log(
    path: Path,
    sensor_map: dict[str, SensorSpec] | None = None,
    on_error: Callable[[int, str], None] | None = None,
) -> list[HomeEvent]:
    """Read a whole log file (undecodable bytes are replaced, then reported as malformed lines)."""
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            return list(read_events(fh, sensor_map, on_error))
    except OSError as err:
        raise LogFormatError(f"cannot read {path}: {err}") from err

"""Reads CASAS sensor logs (space-separated originals and CIL tab-separated files) into HomeEvents."""

from __future__ import annotations

import csv
import gzip
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from hub.detection.home_events import KNOWN_KINDS, HomeEvent, room_role
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


@dataclass(frozen=True)
class HomeLog:
    """A recorded home: its events, the provisioned sensors and the labelled absences (may be empty)."""

    name: str
    events: list[HomeEvent]
    sensors: dict[str, SensorSpec]
    absences: list[tuple[datetime, datetime]]


def spec_from_provisioning(room: str, kind: str) -> SensorSpec:
    """What an installer's room and kind (motion, door, item, bed) mean to the home detectors."""
    kind = kind.strip().lower()
    role = room_role(room)
    if kind == "item" and role == "bedroom":
        # The only item an installer puts in a bedroom is the bed's pressure mat.
        kind = "bed"
    if kind not in KNOWN_KINDS:
        raise LogFormatError(f"unknown sensor kind {kind!r}")
    return SensorSpec(kind, room.strip(), role == "entrance" and kind in ("door", "motion"))


def load_rooms_csv(path: Path) -> dict[str, SensorSpec]:
    """Read rooms.csv (``sensor,room,kind[,note]``), the provisioning of a recorded home."""
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as err:
        raise LogFormatError(f"cannot read {path}: {err}") from err
    out: dict[str, SensorSpec] = {}
    for line_no, row in enumerate(rows, start=2):
        sensor, room, kind = (row.get(k) for k in ("sensor", "room", "kind"))
        if not sensor or room is None or not kind:
            raise LogFormatError(f"{path}:{line_no}: needs sensor, room and kind")
        try:
            out[sensor] = spec_from_provisioning(room, kind)
        except LogFormatError as err:
            raise LogFormatError(f"{path}:{line_no}: {err}") from err
    return out


def load_absences(path: Path) -> list[tuple[datetime, datetime]]:
    """Read absences.csv (``start,end,...``); a missing file means none are known."""
    if not path.exists():
        return []
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            return sorted(
                (datetime.fromisoformat(row["start"]), datetime.fromisoformat(row["end"]))
                for row in csv.DictReader(fh)
            )
    except (OSError, KeyError, TypeError, ValueError) as err:
        raise LogFormatError(f"cannot read absences {path}: {err}") from err


def read_home_folder(
    folder: Path,
    on_error: Callable[[int, str], None] | None = None,
    overrides: dict[str, SensorSpec] | None = None,
) -> HomeLog:
    """Read a ``homes/`` folder: events.txt.gz (or events.txt), rooms.csv and absences.csv."""
    sensors = {**load_rooms_csv(folder / "rooms.csv"), **(overrides or {})}
    gz, plain = folder / "events.txt.gz", folder / "events.txt"
    try:
        if gz.exists():
            with gzip.open(gz, "rt", encoding="utf-8", errors="replace") as fh:
                events = list(read_events(fh, sensors, on_error))
        else:
            with plain.open(encoding="utf-8", errors="replace") as fh:
                events = list(read_events(fh, sensors, on_error))
    except (OSError, EOFError) as err:
        raise LogFormatError(f"cannot read events of {folder}: {err}") from err
    return HomeLog(folder.name, events, sensors, load_absences(folder / "absences.csv"))


def read_home(path: Path, on_error: Callable[[int, str], None] | None = None) -> HomeLog:
    """A homes/ folder, or a single CASAS log file (sensors guessed from names, no absences)."""
    if path.is_dir():
        return read_home_folder(path, on_error)
    events = read_log(path, None, on_error)
    sensors: dict[str, SensorSpec] = {}
    for ev in events:
        sensors.setdefault(ev.sensor, SensorSpec(ev.kind, ev.room, ev.exit))
    return HomeLog(path.name, events, sensors, [])

"""Parsing of CASAS logs in both formats, default sensor guesses and sensor maps."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from simulators.casas import (
    LogFormatError,
    SensorSpec,
    default_spec,
    load_sensor_map,
    parse_line,
    read_events,
    read_log,
)


def test_cil_tab_separated_line() -> None:
    raw = parse_line("2016-07-12 00:00:30.600670\tBedroomABed\tON\t\n")
    assert raw is not None
    assert raw.ts == datetime(2016, 7, 12, 0, 0, 30, 600670)
    assert (raw.sensor, raw.state, raw.location) == ("BedroomABed", "ON", "")


@pytest.mark.parametrize(
    ("line", "sensor", "state", "location"),
    [
        ("2010-11-04 00:03:50.209589 M003 ON", "M003", "ON", ""),
        ("2010-11-04 05:40:51.303739 M004 ON Sleeping begin", "M004", "ON", ""),
        ("2010-11-04 05:40:51 D001 Kitchen OPEN Meal_Preparation end", "D001", "OPEN", "Kitchen"),
        ("2010-11-04 05:40:51.1 T001 21.5", "T001", "21.5", ""),
    ],
)
def test_space_separated_original_lines(line: str, sensor: str, state: str, location: str) -> None:
    raw = parse_line(line)
    assert raw is not None
    assert (raw.sensor, raw.state, raw.location) == (sensor, state, location)


@pytest.mark.parametrize(
    "line",
    [
        "garbage",
        "2010-11-04 00:03:50 M003",
        "2010-13-04 00:03:50 M003 ON",
        "2010-11-04 00:03:50 M003 Kitchen Bogus",
        "2016-07-12 00:00:30\tBedroomABed",
        "2016-07-12\tBedroomABed\tON",
        "2016-07-12 00:00:30\tBedroomABed\tMAYBE",
    ],
)
def test_malformed_lines_raise(line: str) -> None:
    with pytest.raises(LogFormatError):
        parse_line(line)


def test_read_events_reports_line_numbers_and_skips() -> None:
    errors: list[tuple[int, str]] = []
    lines = [
        "2016-07-12 08:00:00.000000\tMainEntryway\tON\t",
        "not a line",
        "",
        "2010-11-04 08:01:00 D001 OPEN",
        "2010-11-04 08:02:00 BedroomADoor ON",
    ]
    events = list(read_events(lines, on_error=lambda n, why: errors.append((n, why))))
    assert [e.sensor for e in events] == ["MainEntryway", "D001", "BedroomADoor"]
    assert [n for n, _ in errors] == [2]
    entry, door, inner = events
    assert (entry.kind, entry.exit, entry.room) == ("motion", True, "MainEntryway")
    assert (door.kind, door.state, door.exit) == ("door", "open", False)
    assert (inner.kind, inner.exit, inner.room) == ("motion", False, "BedroomA")


def test_default_spec_rooms_and_exits() -> None:
    assert default_spec("BathroomAToilet", "ON") == SensorSpec("motion", "BathroomA", False)
    assert default_spec("LivingRoomAChair", "ON") == SensorSpec("motion", "LivingRoomA", False)
    assert default_spec("EntrywayB", "ON") == SensorSpec("motion", "EntrywayB", True)
    assert default_spec("FrontDoor", "OPEN") == SensorSpec("door", "", True)
    assert default_spec("T001", "21.5") == SensorSpec("environment", "", False)
    assert default_spec("M003", "ON", "Bathroom") == SensorSpec("motion", "Bathroom", False)


def test_sensor_map_overrides_defaults(tmp_path: Path) -> None:
    path = tmp_path / "map.json"
    path.write_text(json.dumps({"D001": {"kind": "door", "room": "Hall", "exit": True}}))
    sensor_map = load_sensor_map(path)
    (event,) = read_events(["2010-11-04 08:01:00 D001 CLOSE"], sensor_map)
    assert (event.kind, event.room, event.exit, event.state) == ("door", "Hall", True, "closed")


@pytest.mark.parametrize(
    "content", ["[1, 2]", "{not json", '{"X": {"room": "Hall"}}', '{"X": {"kind": "teleporter"}}']
)
def test_bad_sensor_maps(tmp_path: Path, content: str) -> None:
    path = tmp_path / "map.json"
    path.write_text(content)
    with pytest.raises(LogFormatError):
        load_sensor_map(path)


def test_read_log_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LogFormatError):
        read_log(tmp_path / "missing.txt")


def test_provisioning_rows_become_sensor_specs(tmp_path: Path) -> None:
    from simulators.casas import load_absences, load_rooms_csv, spec_from_provisioning

    assert spec_from_provisioning("entrance", "door") == SensorSpec("door", "entrance", True)
    assert spec_from_provisioning("Front door", "motion") == SensorSpec("motion", "Front door", True)
    assert spec_from_provisioning("bedroom", "item") == SensorSpec("bed", "bedroom", False)
    assert spec_from_provisioning("living_room", "item") == SensorSpec("item", "living_room", False)
    assert spec_from_provisioning("kitchen", "door") == SensorSpec("door", "kitchen", False)
    with pytest.raises(LogFormatError, match="unknown sensor kind"):
        spec_from_provisioning("kitchen", "laser")

    rooms = tmp_path / "rooms.csv"
    rooms.write_text("sensor,room,kind,note\nA,kitchen,motion,x\nB,hall,door,\n")
    assert load_rooms_csv(rooms) == {"A": SensorSpec("motion", "kitchen", False),
                                     "B": SensorSpec("door", "hall", False)}
    rooms.write_text("sensor,room,kind\nA,kitchen,\n")
    with pytest.raises(LogFormatError, match=":2: needs sensor, room and kind"):
        load_rooms_csv(rooms)

    absences = tmp_path / "absences.csv"
    absences.write_text("start,end,duration_min,label\n2024-03-04 10:00:00,2024-03-04 12:00:00,120,Leaving\n")
    assert load_absences(absences) == [(datetime(2024, 3, 4, 10), datetime(2024, 3, 4, 12))]
    assert load_absences(tmp_path / "missing.csv") == []

"""Checks one roster row and turns it into typed records, or into errors naming row, column and reason."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from hub.imports.columns import CONTACTS
from hub.imports.reader import RawRow

ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
PHONE = re.compile(r"^\+?[0-9 -]{3,20}$")
FLAG = re.compile(r"^[a-z0-9_]{1,40}$")
REGION = re.compile(r"^[a-z0-9_-]+(/[a-z0-9_-]+){0,2}$")
_FLAG_SPLIT = re.compile(r"[;,，；、\s]+")


@dataclass(frozen=True)
class RowError:
    """A bad cell: the row number as the spreadsheet shows it, the column key and why."""

    row: int
    column: str
    reason: str


@dataclass(frozen=True)
class ContactRec:
    """A contact, in calling order."""

    name: str
    relation: str
    phone: str | None


@dataclass(frozen=True)
class DeviceRec:
    """A device to provision and bind to the row's resident."""

    id: str
    type: str
    room: str | None


@dataclass
class RosterRow:
    """One elder with their household, contacts and (optionally) a device."""

    row: int
    resident_id: str
    name: str
    birth_year: int | None
    gender: str | None
    phone: str | None
    household_id: str
    community: str
    address: str
    lat: float | None
    lon: float | None
    medical_notes: str
    risk_flags: list[str]
    contacts: list[ContactRec] = field(default_factory=list)
    device: DeviceRec | None = None


class _Checker:
    """Collects every problem of one row instead of stopping at the first."""

    def __init__(self, row: int, cells: dict[str, str]) -> None:
        self.row = row
        self.cells = cells
        self.errors: list[RowError] = []

    def bad(self, column: str, reason: str) -> None:
        self.errors.append(RowError(self.row, column, reason))

    def text(self, key: str, max_len: int, required: bool = False) -> str:
        value = self.cells.get(key, "")
        if required and not value:
            self.bad(key, "required")
        elif len(value) > max_len:
            self.bad(key, f"longer than {max_len} characters")
        return value

    def match(self, key: str, pattern: re.Pattern[str], what: str, required: bool = False) -> str | None:
        value = self.cells.get(key, "")
        if not value:
            if required:
                self.bad(key, "required")
            return None
        if not pattern.match(value):
            self.bad(key, f"not {what}")
        return value

    def number(self, key: str, low: float, high: float) -> float | None:
        value = self.cells.get(key, "")
        if not value:
            return None
        try:
            number = float(value)
        except ValueError:
            self.bad(key, "not a number")
            return None
        if not low <= number <= high:
            self.bad(key, f"outside {low:g}..{high:g}")
            return None
        return number


def _device(c: _Checker, device_types: frozenset[str]) -> DeviceRec | None:
    device_id = c.match("device_id", ID, "an id (1-64 of A-Z a-z 0-9 _ -)")
    device_type = c.cells.get("device_type", "")
    room = c.text("device_room", 40) or None
    if device_id and not device_type:
        c.bad("device_type", "required when a device id is given")
    elif device_type and device_type not in device_types:
        c.bad("device_type", f"unknown device type (known: {', '.join(sorted(device_types))})")
    elif device_type and not device_id:
        c.bad("device_id", "required when a device type is given")
    return DeviceRec(device_id, device_type, room) if device_id and device_type else None


def _contacts(c: _Checker) -> list[ContactRec]:
    contacts = []
    for n in range(1, CONTACTS + 1):
        keys = (f"contact{n}_name", f"contact{n}_relation", f"contact{n}_phone")
        if not any(c.cells.get(k) for k in keys):
            continue
        contact_name = c.text(keys[0], 100, required=True)
        relation = c.text(keys[1], 40)
        contact_phone = c.match(keys[2], PHONE, "a phone number")
        contacts.append(ContactRec(contact_name, relation, contact_phone))
    return contacts


def parse_row(raw: RawRow, device_types: frozenset[str]) -> RosterRow | list[RowError]:
    """A checked row, or every error found in it."""
    row_no, cells = raw
    c = _Checker(row_no, cells)
    for key, value in cells.items():
        if "\x00" in value:
            c.bad(key, "contains a NUL character")
            cells = {**cells, key: ""}
    c.cells = cells
    resident_id = c.match("resident_id", ID, "an id (1-64 of A-Z a-z 0-9 _ -)", required=True)
    household_id = c.match("household_id", ID, "an id (1-64 of A-Z a-z 0-9 _ -)", required=True)
    community = c.match("community", REGION, "a region path such as sz/futian/lianhua", required=True)
    name = c.text("name", 100, required=True)
    birth = c.number("birth_year", 1890, 2030)
    if birth is not None and not birth.is_integer():
        c.bad("birth_year", "not a whole year")
    gender = c.text("gender", 10) or None
    phone = c.match("phone", PHONE, "a phone number")
    address = c.text("address", 300)
    lat, lon = c.number("lat", -90, 90), c.number("lon", -180, 180)
    if (cells.get("lat", "") == "") != (cells.get("lon", "") == ""):
        c.bad("lat" if not cells.get("lat") else "lon", "give both latitude and longitude, or neither")
    notes = c.text("medical_notes", 4000)
    flags = [f for f in _FLAG_SPLIT.split(cells.get("risk_flags", "")) if f]
    for flag in flags:
        if not FLAG.match(flag):
            c.bad("risk_flags", f"{flag[:40]!r} is not a flag (a-z 0-9 _)")
    if len(flags) > 20:
        c.bad("risk_flags", "more than 20 flags")
    contacts = _contacts(c)
    device = _device(c, device_types)
    if c.errors:
        return c.errors
    assert resident_id and household_id and community
    return RosterRow(row_no, resident_id, name, int(birth) if birth is not None else None, gender, phone,
                     household_id, community, address, lat, lon, notes, flags, contacts, device)

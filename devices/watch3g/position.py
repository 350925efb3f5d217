"""The position body shared by UD, UD2, UD_LTE, UD_WCDMA, AL, AL_LTE, WT... frames."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from devices.watch3g.alarms import parse_status
from devices.watch3g.fields import FieldReader
from devices.watch3g.model import Cell, Location, Wifi

# date, time, A/V, lat, N/S, lon, E/W, speed, course, altitude, satellites, gsm, battery, steps,
# tumbles, status: then the cell/Wi-Fi tail.
_CORE = 16
_MAX_CELLS = 32
_MAX_WIFIS = 32
_ACCURACY = re.compile(r"\d{1,9}(?:\.\d{0,12})?")


def parse_position(r: FieldReader) -> dict[str, Any]:
    """Decode the position body into Frame fields; structural problems raise FrameError."""
    r.require(_CORE)
    ts = _device_time(r)
    validity = r.text(2)
    if validity not in ("A", "V"):
        raise r.error("bad_validity", "fix flag must be 'A' or 'V'")
    try:
        status = parse_status(r.text(15))
    except ValueError:
        raise r.error("bad_status", "status word must be 1-8 hex digits") from None
    if len(r.text(15)) < 8:
        r.warn("short status word (old firmware): decoded with the 32-bit layout")
    speed = r.soft_float(7, "speed", 0, 2000)
    course = r.soft_float(8, "course", -360, 360)
    altitude = r.soft_float(9, "altitude", -2000, 100000)
    satellites = r.soft_int(10, "satellites", 0, 200)
    cells, wifis, accuracy = _network_tail(r)
    location = None
    if validity == "A":
        coords = _coordinates(r)
        if coords is not None:
            location = Location(
                lat=coords[0], lon=coords[1],
                accuracy_m=accuracy if accuracy else None,
                speed_kmh=speed, course_deg=course, altitude_m=altitude,
                satellites=satellites, time=ts,
            )
    return {
        "ts": ts,
        "fix_valid": validity == "A",
        "location": location,
        "signal": r.soft_int(11, "gsm signal", 0, 100),
        "battery": r.soft_int(12, "battery", 0, 100),
        "steps": r.soft_int(13, "steps", 0, 10**9),
        "tumbles": r.soft_int(14, "tumbles", 0, 10**9),
        "status": status,
        "alarms": status.alarms,
        "cells": cells,
        "wifis": wifis,
    }


def _device_time(r: FieldReader) -> datetime | None:
    date, time = r.text(0), r.text(1)
    if not (len(date) == 6 and date.isdigit() and len(time) == 6 and time.isdigit() and date.isascii()):
        raise r.error("bad_time", "date and time must be ddmmyy,hhmmss")
    if date == "000000":
        r.warn("device clock not set")
        return None
    try:
        return datetime(2000 + int(date[4:]), int(date[2:4]), int(date[:2]),
                        int(time[:2]), int(time[2:4]), int(time[4:]), tzinfo=UTC)
    except ValueError:
        raise r.error("bad_time", "date or time out of range") from None


def _coordinates(r: FieldReader) -> tuple[float, float] | None:
    # A fix marked valid with unusable coordinates is downgraded to "no fix": an alarm frame
    # must still get through even when its GPS part is garbage.
    lat = r.soft_float(3, "latitude", -90, 90)
    lon = r.soft_float(5, "longitude", -180, 180)
    ns, ew = r.text(4), r.text(6)
    if lat is None or lon is None or ns not in ("N", "S", "") or ew not in ("E", "W", ""):
        r.warn("fix marked valid but coordinates unusable: treated as no fix")
        return None
    # A negative value keeps its sign whatever the letter; S/W make it negative.
    lat = -abs(lat) if ns == "S" else lat
    lon = -abs(lon) if ew == "W" else lon
    if lat == 0 and lon == 0:
        r.warn("fix marked valid at 0,0: treated as no fix")
        return None
    return lat, lon


def _network_tail(r: FieldReader) -> tuple[tuple[Cell, ...], tuple[Wifi, ...], float | None]:
    # Firmware differs: some send `0,ta,mcc,mnc` with no cells, some send just `0` before the
    # Wi-Fi count. Try the full layout first, then the compact one, and keep the first that
    # accounts for every field; if neither does, drop the tail with a warning.
    tail = r.values[_CORE:]
    if not tail:
        return (), (), None
    layouts = [_full_layout]
    if r.text(_CORE) == "0":
        layouts.append(_compact_layout)
    for layout in layouts:
        result = layout(r, _CORE)
        if result is not None:
            return result
    r.warn("cell/Wi-Fi list malformed: ignored")
    return (), (), None


_Tail = tuple[tuple[Cell, ...], tuple[Wifi, ...], float | None]


def _num(r: FieldReader, i: int, lo: int, hi: int, *, empty: bool = True) -> int | None:
    raw = r.text(i)
    if raw == "":
        if empty:
            return None
        raise ValueError
    if not (raw.lstrip("-").isdigit() and raw.isascii() and len(raw) <= 12):
        raise ValueError
    value = int(raw)
    if not lo <= value <= hi:
        raise ValueError
    return value


def _full_layout(r: FieldReader, start: int) -> _Tail | None:
    try:
        count = _num(r, start, 0, _MAX_CELLS, empty=False) or 0
        if start + 4 + 3 * count > len(r):
            return None
        _num(r, start + 1, 0, 10**6)  # timing advance / connected cell flag
        mcc = _num(r, start + 2, 0, 9999)
        mnc = _num(r, start + 3, 0, 9999)
        i = start + 4
        cells = []
        for _ in range(count):
            lac = _num(r, i, 0, 10**12, empty=False)
            cid = _num(r, i + 1, 0, 10**12, empty=False)
            assert lac is not None and cid is not None
            cells.append(Cell(mcc, mnc, lac, cid, _num(r, i + 2, -200, 1000)))
            i += 3
        return _wifi_part(r, i, tuple(cells))
    except ValueError:
        return None


def _compact_layout(r: FieldReader, start: int) -> _Tail | None:
    try:
        return _wifi_part(r, start + 1, ())
    except ValueError:
        return None


def _wifi_part(r: FieldReader, i: int, cells: tuple[Cell, ...]) -> _Tail | None:
    n = len(r)
    if i >= n:
        return cells, (), None
    count = _num(r, i, 0, _MAX_WIFIS) or 0
    i += 1
    if i + 3 * count > n:
        return None
    wifis = []
    for _ in range(count):
        name = r.values[i].decode("utf-8", errors="replace")
        mac = r.text(i + 1).lower()
        if not mac or len(mac) > 32:
            return None
        wifis.append(Wifi(mac=mac, rssi=_num(r, i + 2, -200, 200), name=name))
        i += 3
    accuracy = None
    if i < n:
        if n - i > 1:
            return None
        raw = r.text(i)
        if raw:
            if not _ACCURACY.fullmatch(raw):
                return None
            accuracy = float(raw)
    return cells, tuple(wifis), accuracy

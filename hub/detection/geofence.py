"""Anti-wandering: leaving a safe zone raises an alert, with hysteresis and accuracy-aware checks."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from psycopg_pool import AsyncConnectionPool

from alerts.model import Binding, Trigger
from devices.observation import Location, Observation

EARTH_M = 6_371_000.0
CONFIRM_FIXES = 2  # consecutive fixes clearly outside before an exit counts
REENTRY_MARGIN_M = 20.0  # back inside by this much before a new exit can be raised
TRAIL = 20


@dataclass(frozen=True)
class Zone:
    """A circle (lat, lon, radius) or a polygon of (lat, lon) points."""

    name: str
    lat: float | None = None
    lon: float | None = None
    radius_m: float | None = None
    polygon: tuple[tuple[float, float], ...] = ()

    def distance_outside(self, lat: float, lon: float) -> float:
        """Metres beyond the boundary (negative: inside, by that much)."""
        if self.radius_m is not None and self.lat is not None and self.lon is not None:
            return _metres(lat, lon, self.lat, self.lon) - self.radius_m
        edge = min(_segment_distance(lat, lon, a, b) for a, b in zip(self.polygon, self.polygon[1:] + self.polygon[:1],
                                                                      strict=True))
        return -edge if _inside(lat, lon, self.polygon) else edge


def _metres(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_M * math.asin(min(1.0, math.sqrt(h)))


def _xy(lat: float, lon: float, lat0: float) -> tuple[float, float]:
    return math.radians(lon) * EARTH_M * math.cos(math.radians(lat0)), math.radians(lat) * EARTH_M


def _segment_distance(lat: float, lon: float, a: tuple[float, float], b: tuple[float, float]) -> float:
    px, py = _xy(lat, lon, lat)
    ax, ay = _xy(*a, lat)
    bx, by = _xy(*b, lat)
    dx, dy = bx - ax, by - ay
    t = 0.0 if dx == dy == 0 else max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)))
    return math.hypot(px - (ax + t * dx), py - (ay + t * dy))


def _inside(lat: float, lon: float, poly: tuple[tuple[float, float], ...]) -> bool:
    inside = False
    for (la1, lo1), (la2, lo2) in zip(poly, poly[1:] + poly[:1], strict=True):
        if (la1 > lat) != (la2 > lat) and lon < (lo2 - lo1) * (lat - la1) / (la2 - la1) + lo1:
            inside = not inside
    return inside


@dataclass
class _Track:
    trail: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=TRAIL))
    outside_fixes: int = 0
    out: bool = False


def assess(zones: list[Zone], fix: Location) -> str:
    """'outside' only when even the accuracy circle is beyond every zone, 'inside', or 'unsure'."""
    accuracy = fix.acc_m if fix.acc_m is not None else 50.0
    beyond = min(z.distance_outside(fix.lat, fix.lon) for z in zones)
    if beyond > accuracy:
        return "outside"
    if beyond < -REENTRY_MARGIN_M:
        return "inside"
    return "unsure"


class Geofences:
    """Tracks each wearable against its resident's safe zones."""

    def __init__(self, pool: AsyncConnectionPool[Any] | None = None) -> None:
        self._pool = pool
        self.zones: dict[str, list[Zone]] = {}
        self._tracks: dict[str, _Track] = {}

    async def refresh(self) -> int:
        """Reload safe zones from the database."""
        assert self._pool is not None
        async with self._pool.connection() as conn:
            rows = await (await conn.execute(
                "SELECT resident_id, name, lat, lon, radius_m, polygon FROM safe_zones")).fetchall()
        zones: dict[str, list[Zone]] = {}
        for rid, name, lat, lon, radius, polygon in rows:
            points = tuple((float(p[1]), float(p[0])) for p in polygon) if polygon else ()
            zones.setdefault(rid, []).append(Zone(name, lat, lon, radius, points))
        self.zones = zones
        return len(rows)

    def observe(self, obs: Observation, binding: Binding) -> list[Trigger]:
        """Check a located observation; one alert per excursion."""
        fix = obs.location
        rid = binding.resident_id
        if fix is None or rid is None or rid not in self.zones:
            return []
        track = self._tracks.setdefault(obs.device_id, _Track())
        track.trail.append({"ts": obs.ts.isoformat(), **fix.as_dict()})
        verdict = assess(self.zones[rid], fix)
        if verdict == "inside":
            track.outside_fixes, track.out = 0, False
            return []
        if verdict == "unsure" or track.out:
            return []
        track.outside_fixes += 1
        if track.outside_fixes < CONFIRM_FIXES:
            return []
        track.out = True
        return [self._trigger(obs, binding, fix, list(track.trail))]

    @staticmethod
    def _trigger(obs: Observation, binding: Binding, fix: Location, trail: list[dict[str, Any]]) -> Trigger:
        assert binding.resident_id and binding.household_id and binding.region_path
        return Trigger(type="wandering", severity="high", ts=obs.ts, resident_id=binding.resident_id,
                       household_id=binding.household_id, region_path=binding.region_path,
                       source_device=obs.device_id, location=fix.as_dict(),
                       details={"source": "geofence", "trail": trail})


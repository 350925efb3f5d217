"""A simulated wristband: heartbeats, positions, IMU snippets and a battery that drains."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from simulators.falls import synth_daily
from simulators.household import SimDevice
from simulators.routine import Routine

METRES_PER_DEG_LAT = 111_320.0


def offset(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    """A position `north_m` and `east_m` metres away."""
    return (lat + north_m / METRES_PER_DEG_LAT,
            lon + east_m / (METRES_PER_DEG_LAT * math.cos(math.radians(lat))))


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Equirectangular distance, good enough within a city."""
    north = (b[0] - a[0]) * METRES_PER_DEG_LAT
    east = (b[1] - a[1]) * METRES_PER_DEG_LAT * math.cos(math.radians(a[0]))
    return math.hypot(north, east)


@dataclass
class Wristband:
    """State of one wristband; `emits` turns a window of virtual time into messages.

    heartbeat_s, location_s: virtual seconds between heartbeats and between positions (at home).
    imu_rate_hz: accelerometer sample rate of IMU snippets (0: none); imu_every_s apart, imu_window_s long.
    """

    device: SimDevice
    home: tuple[float, float]
    battery: float
    drain_per_h: float
    heartbeat_s: float = 300.0
    location_s: float = 600.0
    imu_rate_hz: float = 0.0
    imu_every_s: float = 120.0
    imu_window_s: float = 2.0
    worn: bool = True
    steps: int = 0
    safe_radius_m: float = 300.0
    device_geofence: bool = True
    wander_from: float | None = None  # virtual time the resident starts walking away
    wander_bearing: float = 0.0
    outside_fence: bool = False
    next_heartbeat: float = 0.0
    next_location: float = 0.0
    next_imu: float = 0.0
    last_t: float = 0.0
    rng: random.Random = field(default_factory=random.Random)

    def position(self, t: float, routine: Routine) -> tuple[float, float]:
        """Where the wristband is: at home, on an outing there and back, or wandering off."""
        if self.wander_from is not None and t >= self.wander_from:
            walked = (t - self.wander_from) * 1.1  # metres at a slow walk
            return offset(*self.home, walked * math.cos(self.wander_bearing), walked * math.sin(self.wander_bearing))
        act = routine.activity_at(t)
        if act.kind != "out":
            return self.home
        share = (t - act.start) / max(act.end - act.start, 1.0)
        reach = 150 + (act.start % 97) * 4  # 150-540 m, fixed per outing
        bearing = (act.start % 360) * math.pi / 180
        d = reach * math.sin(math.pi * share)
        return offset(*self.home, d * math.cos(bearing), d * math.sin(bearing))

    def emits(self, v0: float, v1: float, routine: Routine) -> list[tuple[float, str, dict[str, object], int]]:
        """(virtual time, message, body, qos) for everything due in [v0, v1)."""
        out: list[tuple[float, str, dict[str, object], int]] = []
        self._advance(v1, routine)
        while self.next_heartbeat < v1:
            t = max(self.next_heartbeat, v0)
            out.append((t, "heartbeat", {"battery": round(self.battery, 1), "signal": self.rng.randint(-95, -60),
                                         "worn": self.worn, "steps": self.steps}, 0))
            self.next_heartbeat += self.heartbeat_s
        while self.next_location < v1:
            t = max(self.next_location, v0)
            out.extend(self._location(t, routine))
            away = (self.wander_from is not None and t >= self.wander_from) or routine.activity_at(t).kind == "out"
            self.next_location += self.location_s / (5 if away else 1)
        if self.imu_rate_hz > 0:
            while self.next_imu < v1:
                t = max(self.next_imu, v0)
                walking = routine.activity_at(t).kind == "out"
                trace = synth_daily(self.imu_rate_hz, self.rng, self.imu_window_s, walking)
                if self.worn:
                    out.append((t, "imu", trace.payload(), 0))
                self.next_imu += self.imu_every_s
        return out

    def _location(self, t: float, routine: Routine) -> list[tuple[float, str, dict[str, object], int]]:
        lat, lon = self.position(t, routine)
        out: list[tuple[float, str, dict[str, object], int]] = [
            (t, "location", {"lat": round(lat, 6), "lon": round(lon, 6), "acc_m": 10, "src": "gnss"}, 0)]
        outside = distance_m(self.home, (lat, lon)) > self.safe_radius_m
        if self.device_geofence and outside and not self.outside_fence and self.wander_from is not None:
            # Anti-wandering bracelets raise their own geofence alarm when they leave the safe zone.
            out.append((t, "alarm", {"alarms": ["geofence_exit"],
                                     "location": {"lat": round(lat, 6), "lon": round(lon, 6), "acc_m": 10,
                                                  "src": "gnss"}}, 1))
        self.outside_fence = outside
        return out

    def _advance(self, t: float, routine: Routine) -> None:
        hours = max(0.0, t - self.last_t) / 3600
        if self.last_t and hours:
            act = routine.activity_at(t)
            if act.kind == "out":
                self.steps += int(hours * 3600 * 1.7)
            elif act.kind in {"idle", "meal", "visitor", "bathroom"}:
                self.steps += int(hours * 300)
            self.battery = max(0.0, self.battery - self.drain_per_h * hours)
        self.last_t = t


def new_wristband(device: SimDevice, home: tuple[float, float], rng: random.Random, start: float,
                  imu_rate_hz: float = 0.0) -> Wristband:
    """A worn wristband with a random charge that drains 1-3 % per hour."""
    band = Wristband(device, home, rng.uniform(60, 100), rng.uniform(1.0, 3.0), imu_rate_hz=imu_rate_hz,
                     rng=random.Random(rng.random()))
    band.next_heartbeat = start + rng.uniform(0, band.heartbeat_s)
    band.next_location = start + rng.uniform(0, band.location_s)
    band.next_imu = start + rng.uniform(0, band.imu_every_s)
    band.last_t = start
    return band

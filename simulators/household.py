"""Simulated households: one resident, a device kit, and how they are provisioned in the hub."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from simulators.hubapi import HubApi

# One kit entry per device: (device type, room, role). The role is what the routine drives.
DEFAULT_KIT: tuple[tuple[str, str | None, str], ...] = (
    ("wristband", None, "wristband"),
    ("door", "entrance", "exit"),
    ("motion", "living_room", "motion"),
    ("motion", "kitchen", "motion"),
    ("motion", "bathroom", "motion"),
    ("motion", "bedroom", "motion"),
    ("bed", "bedroom", "bed"),
)
RADAR = ("radar", "bathroom", "radar")
EXTRA_KIT = {
    "radar": RADAR,
    "smoke": ("smoke", "kitchen", "smoke"),
    "leak": ("leak", "bathroom", "leak"),
    "watch3g": ("watch3g", None, "watch"),
}
_CODES = {"wristband": "wb", "door": "dr", "motion": "mo", "bed": "bd", "radar": "rd", "smoke": "sm",
          "leak": "lk", "watch3g": "w"}
REGION_LEVELS = ("city", "district", "community")


@dataclass
class SimDevice:
    """One simulated device: ids, where it is, and its broker password once provisioned."""

    device_id: str
    device_type: str
    resident_id: str
    household_id: str
    room: str | None
    role: str
    password: str = ""

    @property
    def z2m_name(self) -> str:
        """The friendly name a zigbee2mqtt gateway would give it."""
        return f"{self.household_id}/{self.room or 'home'}/{self.device_type}-{self.device_id}"

    @property
    def meta(self) -> dict[str, Any]:
        """Device meta sent at provisioning (exit door flag, zigbee2mqtt name)."""
        out: dict[str, Any] = {"simulated": True}
        if self.role == "exit":
            out["exit"] = True
        if self.device_type not in {"wristband", "watch3g"}:
            out["z2m_name"] = self.z2m_name
        return out


@dataclass
class Household:
    """A flat with one resident living alone and its devices."""

    household_id: str
    resident_id: str
    region_path: str
    lat: float
    lon: float
    risk_flags: list[str] = field(default_factory=lambda: ["living_alone"])
    devices: list[SimDevice] = field(default_factory=list)
    safe_zone_m: float | None = None  # a circular safe zone around home, set through the API

    def device(self, role: str, room: str | None = None) -> SimDevice | None:
        """The first device with this role (and room, when given)."""
        for d in self.devices:
            if d.role == role and (room is None or d.room == room):
                return d
        return None

    def rooms(self) -> list[str]:
        """Rooms with a motion sensor."""
        return [d.room for d in self.devices if d.role == "motion" and d.room]


def make_household(prefix: str, index: int, rng: random.Random, region_path: str,
                   center: tuple[float, float], extras: Sequence[str] = ("radar",),
                   kit: Sequence[tuple[str, str | None, str]] = DEFAULT_KIT) -> Household:
    """A household whose ids start with `prefix` (letters and digits only, so 3G watches accept them)."""
    hid = f"{prefix}h{index:05d}"
    rid = f"{prefix}r{index:05d}"
    lat = center[0] + rng.uniform(-0.01, 0.01)
    lon = center[1] + rng.uniform(-0.01, 0.01)
    flags = ["living_alone"] + (["dementia"] if rng.random() < 0.3 else [])
    house = Household(hid, rid, region_path, round(lat, 6), round(lon, 6), flags)
    entries = list(kit) + [EXTRA_KIT[name] for name in extras]
    counts: dict[str, int] = {}
    for dtype, room, role in entries:
        code = _CODES[dtype]
        counts[code] = counts.get(code, 0) + 1
        did = f"{prefix}{index:05d}{code}{counts[code]}"
        house.devices.append(SimDevice(did, dtype, rid, hid, room, role))
    return house


def make_households(count: int, prefix: str, rng: random.Random, region_path: str = "sz/futian/lianhua",
                    center: tuple[float, float] = (22.5535, 114.0537), radar_share: float = 0.5) -> list[Household]:
    """`count` households; about `radar_share` of them have a bathroom fall radar."""
    return [make_household(prefix, i, rng, region_path, center,
                           extras=("radar",) if rng.random() < radar_share else ())
            for i in range(1, count + 1)]


class Provisioner(Protocol):
    """Registers households and devices in a hub and fills in each device's broker password."""

    async def provision(self, households: Sequence[Household]) -> None:
        """Create residents and devices; set `password` on every device."""

    async def remove(self, households: Sequence[Household]) -> None:
        """Revoke the devices again."""


def resident_body(house: Household) -> dict[str, Any]:
    """The resident as the provisioning API takes it (no real personal data)."""
    return {
        "id": house.resident_id, "household_id": house.household_id, "name": f"Sim {house.resident_id}",
        "birth_year": 1940, "risk_flags": house.risk_flags,
        "contacts": [{"name": "Sim contact", "relation": "child", "phone": "13800000000"}],
    }


class ApiProvisioner:
    """Provisions through the hub API (admin or operator account)."""

    def __init__(self, api: HubApi) -> None:
        self.api = api

    async def provision(self, households: Sequence[Household]) -> None:
        """Regions, households, residents and devices, one request each."""
        for path in sorted({h.region_path for h in households}):
            parts = path.split("/")
            for depth in range(1, len(parts) + 1):
                level = REGION_LEVELS[min(depth, len(REGION_LEVELS)) - 1]
                await self.api.create_region("/".join(parts[:depth]), level, parts[depth - 1])
        for house in households:
            await self.api.create_household({"id": house.household_id, "region_path": house.region_path,
                                             "address": f"Sim {house.household_id}", "lat": house.lat,
                                             "lon": house.lon})
            await self.api.create_resident(resident_body(house))
            if house.safe_zone_m:
                await self.api.set_safe_zones(house.resident_id, [{"name": "home", "lat": house.lat,
                                                                   "lon": house.lon, "radius_m": house.safe_zone_m}])
            for d in house.devices:
                out = await self.api.create_device({"id": d.device_id, "type": d.device_type,
                                                    "resident_id": d.resident_id, "room": d.room, "meta": d.meta})
                d.password = out["mqtt_password"]

    async def remove(self, households: Sequence[Household]) -> None:
        """DELETE every device."""
        for house in households:
            for d in house.devices:
                await self.api.delete_device(d.device_id)


class DbProvisioner:
    """Provisions straight into the database and broker password file (tests, `make run`, no API)."""

    def __init__(self, db_url: str, passwd_file: str, reload_pid_file: str | None = None) -> None:
        self.db_url = db_url
        self.passwd_file = passwd_file
        self.reload_pid_file = reload_pid_file

    async def provision(self, households: Sequence[Household]) -> None:
        """Insert regions, households, residents, contacts and devices; issue broker accounts."""
        from pathlib import Path

        import psycopg

        from devices.credentials import CredentialStore
        from devices.provisioning import issue_credentials, provision

        async with await psycopg.AsyncConnection.connect(self.db_url) as conn:
            for path in sorted({h.region_path for h in households}):
                parts = path.split("/")
                for depth in range(1, len(parts) + 1):
                    level = REGION_LEVELS[min(depth, len(REGION_LEVELS)) - 1]
                    await conn.execute("INSERT INTO regions (path, level, name) VALUES (%s, %s, %s)"
                                       " ON CONFLICT DO NOTHING", ("/".join(parts[:depth]), level, parts[depth - 1]))
            for h in households:
                await conn.execute("INSERT INTO households (id, region_path, address, lat, lon) VALUES"
                                   " (%s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
                                   (h.household_id, h.region_path, f"Sim {h.household_id}", h.lat, h.lon))
                await conn.execute("INSERT INTO residents (id, household_id, name, birth_year, risk_flags)"
                                   " VALUES (%s, %s, %s, 1940, %s) ON CONFLICT (id) DO NOTHING",
                                   (h.resident_id, h.household_id, f"Sim {h.resident_id}", h.risk_flags))
                await conn.execute("INSERT INTO contacts (resident_id, position, name, relation, phone) VALUES"
                                   " (%s, 1, 'Sim contact', 'child', '13800000000') ON CONFLICT DO NOTHING",
                                   (h.resident_id,))
                for d in h.devices:
                    await provision(conn, d.device_id, d.device_type, resident_id=d.resident_id, room=d.room,
                                    meta=d.meta)
        store = CredentialStore(Path(self.passwd_file), Path(self.reload_pid_file) if self.reload_pid_file else None)
        passwords = issue_credentials(store, [d.device_id for h in households for d in h.devices])
        for h in households:
            for d in h.devices:
                d.password = passwords[d.device_id]

    async def remove(self, households: Sequence[Household]) -> None:
        """Revoke every device and delete its broker account."""
        from pathlib import Path

        import psycopg

        from devices.credentials import CredentialStore
        from devices.provisioning import revoke

        store = CredentialStore(Path(self.passwd_file), Path(self.reload_pid_file) if self.reload_pid_file else None)
        async with await psycopg.AsyncConnection.connect(self.db_url) as conn:
            for h in households:
                for d in h.devices:
                    await revoke(conn, store, d.device_id)

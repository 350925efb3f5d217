"""Defence in depth for the unauthenticated watch protocol: who may connect, how many, and what to believe."""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from devices.watch3g.model import Location

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
IsProvisioned = Callable[[str], Awaitable[bool]]
LastFix = Callable[[str], Awaitable[Location | None]]  # the hub's last trusted fix, its `time` set

# Faster than an airliner between two fixes is not a watch on a wrist (GNSS noise is allowed for below).
MAX_SPEED_KMH = 400.0
_EARTH_M = 6_371_000.0


@dataclass(frozen=True)
class GatewayLimits:
    """Bounds on the watch gateway's connections.

    max_connections: open connections in all; beyond it new ones are closed at once.
    max_per_address: open connections from one source address (a carrier's NAT may put many
        watches behind one address: keep room for them).
    hello_timeout: seconds a connection may stay without a frame from a provisioned watch.
    idle_timeout: seconds an identified watch may stay silent (it sends LK every 5-8 minutes).
    allowed_networks: source networks allowed to connect; empty: any.
    """

    max_connections: int = 5000
    max_per_address: int = 50
    hello_timeout: float = 30.0
    idle_timeout: float = 900.0
    allowed_networks: tuple[Network, ...] = ()

    @staticmethod
    def parse_networks(text: str | Iterable[str]) -> tuple[Network, ...]:
        """`10.0.0.0/8, 2001:db8::/32` → networks; ValueError names a bad one."""
        items = text.split(",") if isinstance(text, str) else list(text)
        return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in items if item.strip())

    def allows(self, address: str | None) -> bool:
        """True when the source address may connect (always, without an allow-list)."""
        if not self.allowed_networks:
            return True
        if address is None:
            return False
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.allowed_networks)


def distance_m(a: Location, b: Location) -> float:
    """Great-circle distance between two fixes (haversine)."""
    la1, la2 = math.radians(a.lat), math.radians(b.lat)
    dla, dlo = la2 - la1, math.radians(b.lon - a.lon)
    h = math.sin(dla / 2) ** 2 + math.cos(la1) * math.cos(la2) * math.sin(dlo / 2) ** 2
    return 2 * _EARTH_M * math.asin(min(1.0, math.sqrt(h)))


def impossible_move(trusted: Location, new: Location, elapsed_s: float, max_speed_kmh: float = MAX_SPEED_KMH) -> bool:
    """True when going from the trusted fix to the new one in `elapsed_s` needs more than `max_speed_kmh`.

    `elapsed_s` is measured by the gateway's clock between arrivals: the frame's own time is whatever
    the sender wrote. Accuracies are subtracted first, and at least 60 s are assumed, so GNSS noise
    and bursts of frames do not count as movement.
    """
    seconds = max(60.0, elapsed_s)
    slack = (trusted.accuracy_m or 50.0) + (new.accuracy_m or 50.0)
    return max(0.0, distance_m(trusted, new) - slack) / seconds * 3.6 > max_speed_kmh


@dataclass
class GatewayStats:
    """Counts of what the gateway refused or flagged (ids only; read by logs and tests)."""

    counts: dict[str, int] = field(default_factory=dict)

    def count(self, name: str) -> None:
        """Add one."""
        self.counts[name] = self.counts.get(name, 0) + 1


class Throttle:
    """Says yes at most once per `every` seconds per key (for logs and events under a flood)."""

    def __init__(self, every: float, clock: Callable[[], float] = time.monotonic, max_keys: int = 10_000) -> None:
        self._every = every
        self._clock = clock
        self._last: dict[str, float] = {}
        self._max_keys = max_keys

    def __call__(self, key: str) -> bool:
        now = self._clock()
        if now - self._last.get(key, -math.inf) < self._every:
            return False
        if len(self._last) >= self._max_keys:
            self._last.clear()
        self._last[key] = now
        return True


class DbRoster:
    """Answers "is this IMEI a provisioned, active watch?" from the hub's database, cached.

    Yes-answers are kept `ttl` seconds, no-answers `negative_ttl` (a newly provisioned watch gets in
    within that time). While the database cannot be reached, watches it said yes to stay accepted.
    Lookups are throttled to `lookups_per_s` (bursts of 5 s worth): a flood of made-up IMEIs cannot
    turn into a flood of queries; while throttled an uncached IMEI is refused (the watch retries).
    """

    def __init__(self, db_url: str, ttl: float = 300.0, negative_ttl: float = 30.0,
                 clock: Callable[[], float] = time.monotonic, lookups_per_s: float = 20.0) -> None:
        self._db_url = db_url
        self._ttl, self._negative_ttl = ttl, negative_ttl
        self._clock = clock
        self._known: dict[str, tuple[bool, float]] = {}
        self._conn: Any = None
        self._connecting: Any = None  # an asyncio.Lock, made on first use (inside the running loop)
        self._rate = lookups_per_s
        self._tokens, self._at = 5 * lookups_per_s, clock()
        self.throttled = 0

    async def __call__(self, imei: str) -> bool:
        now = self._clock()
        cached = self._known.get(imei)
        if cached is not None and now - cached[1] < (self._ttl if cached[0] else self._negative_ttl):
            return cached[0]
        self._tokens = min(5 * self._rate, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens < 1:
            self.throttled += 1
            return bool(cached and cached[0])
        self._tokens -= 1
        try:
            active = await self._lookup(imei)
        except Exception:  # noqa: BLE001 - the database is down: keep what we knew, refuse the rest
            self._conn = None
            return bool(cached and cached[0])
        if len(self._known) >= 100_000:
            self._known = {k: v for k, v in self._known.items() if v[0]}  # a flood of fake IMEIs is forgotten
        self._known[imei] = (active, now)
        return active

    async def _connection(self) -> Any:
        import asyncio

        import psycopg

        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:  # connections handled at once share one database connection
            if self._conn is None or self._conn.closed:
                self._conn = await psycopg.AsyncConnection.connect(self._db_url, autocommit=True, connect_timeout=5)
            return self._conn

    async def _lookup(self, imei: str) -> bool:
        conn = await self._connection()
        cur = await conn.execute(
            "SELECT 1 FROM devices WHERE id = %s AND type = 'watch3g' AND status = 'active'", (imei,))
        return await cur.fetchone() is not None

    async def last_fix(self, imei: str) -> Location | None:
        """The watch's last location the hub stored (only fixes it believed become one), or None."""
        from datetime import datetime

        try:
            conn = await self._connection()
            cur = await conn.execute("SELECT last_location FROM device_status WHERE device_id = %s", (imei,))
            row = await cur.fetchone()
            last = row[0] if row else None
            if not isinstance(last, dict) or last.get("lat") is None or not last.get("ts"):
                return None
            return Location(float(last["lat"]), float(last["lon"]), last.get("acc_m"),
                            time=datetime.fromisoformat(str(last["ts"])))
        except Exception:  # noqa: BLE001 - no seed: the first fix the gateway sees is compared with nothing
            self._conn = None
            return None

    async def close(self) -> None:
        """Close the database connection."""
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


"""A scene for API tests: two communities, a resident in each, and one user per role."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.types.json import Jsonb

IN_COMMUNITY = "sz/futian/lianhua"
OUT_COMMUNITY = "sz/nanshan/shekou"
# Everything outside the scoped users' reach carries this marker, so a leak is visible in any response body.
OUT = "OUTSIDE"


@dataclass
class Scene:
    """Ids of the seeded objects, tokens per role, and factories for fresh targets."""

    base: str
    db_url: str
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    user_ids: dict[str, int] = field(default_factory=dict)
    seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def resident(self, target: str) -> str:
        """The seeded resident in or out of the scoped users' community."""
        return "IN-R" if target == "in" else f"{OUT}-R"

    def household(self, target: str) -> str:
        """The seeded household in or out of scope."""
        return "IN-H" if target == "in" else f"{OUT}-H"

    def community(self, target: str) -> str:
        """The community in or out of scope."""
        return IN_COMMUNITY if target == "in" else OUT_COMMUNITY

    def fresh(self, prefix: str, target: str) -> str:
        """A new unique id carrying the out-of-scope marker when it is out of scope."""
        return f"{'IN' if target == 'in' else OUT}-{prefix}{next(self.seq)}"

    async def sql(self, query: str, params: Any = ()) -> list[tuple[Any, ...]]:
        """Run one statement in its own committed transaction."""
        async with await psycopg.AsyncConnection.connect(self.db_url, autocommit=True) as conn:
            cur = await conn.execute(query, params)
            return await cur.fetchall() if cur.description else []

    async def alert(self, target: str, severity: str = "high", responder: int | None = None) -> int:
        """A fresh open alert for the seeded resident (a unique type keeps the one-open-per-type rule happy)."""
        rid, hid = self.resident(target), self.household(target)
        rows = await self.sql(
            "INSERT INTO alerts (resident_id, household_id, region_path, type, severity, first_ts, last_ts, location)"
            " VALUES (%s, %s, %s, %s, %s, now(), now(), %s) RETURNING id",
            (rid, hid, self.community(target), f"test_{next(self.seq)}", severity,
             Jsonb({"lat": 22.55, "lon": 114.05, "acc_m": 20})))
        alert_id = int(rows[0][0])
        await self.sql("INSERT INTO alert_events (alert_id, kind, details) VALUES (%s, 'created', '{}')", (alert_id,))
        if responder is not None:
            await self.sql("INSERT INTO alert_responses (alert_id, user_id, state) VALUES (%s, %s, 'accepted')",
                           (alert_id, responder))
        return alert_id

    async def device(self, target: str) -> str:
        """A fresh wristband bound to the seeded resident (no broker account needed)."""
        device_id = self.fresh("D", target)
        await self.sql("INSERT INTO devices (id, type, resident_id) VALUES (%s, 'wristband', %s)",
                       (device_id, self.resident(target)))
        return device_id

    async def token(self, username: str) -> dict[str, str]:
        """A fresh login for one of the seeded users."""
        async with httpx.AsyncClient(base_url=self.base) as http:
            res = await http.post("/api/auth/token", data={"username": username, "password": username + "-pw"})
            res.raise_for_status()
            return {"Authorization": f"Bearer {res.json()['access_token']}"}


USERS = {
    # role → (username, scope_path, resident_id)
    "admin": ("admin1", None, None),
    "operator": ("op-futian", "sz/futian", None),
    "community_worker": ("cw-lianhua", IN_COMMUNITY, None),
    "family": ("fam-in", None, "IN-R"),
}


@pytest.fixture
async def scene(running_hub: Any, world: Any, settings: Any) -> Scene:
    """Seeded data and logged-in users of every role, on a running hub."""
    s = Scene(base=f"http://127.0.0.1:{settings.api_port}", db_url=settings.db_url)
    await world.region_tree()
    for rid, hid, community in (("IN-R", "IN-H", IN_COMMUNITY), (f"{OUT}-R", f"{OUT}-H", OUT_COMMUNITY)):
        await s.sql("INSERT INTO households (id, region_path, address, lat, lon) VALUES (%s, %s, %s, 22.54, 114.06)",
                    (hid, community, f"{hid} 1号楼 101"))
        await s.sql("INSERT INTO residents (id, household_id, name, birth_year, risk_flags) VALUES"
                    " (%s, %s, %s, 1938, '{living_alone}')", (rid, hid, f"Name of {rid}"))
        await s.sql("INSERT INTO contacts (resident_id, position, name, phone) VALUES (%s, 1, %s, '13800000001')",
                    (rid, f"Contact of {rid}"))
    for role, (username, scope, resident) in USERS.items():
        await world.user(username, role, scope_path=scope, resident_id=resident)
        s.headers[role] = await s.token(username)
    await world.user(f"cw-{OUT}", "community_worker", scope_path=OUT_COMMUNITY)
    for username in [u for u, _, _ in USERS.values()] + [f"cw-{OUT}"]:
        rows = await s.sql("SELECT id FROM users WHERE username = %s", (username,))
        s.user_ids[username] = int(rows[0][0])
    for target in ("in", "out"):
        await s.alert(target)
        device = await s.device(target)
        await s.sql("INSERT INTO device_status (device_id, last_seen, online, battery, worn) VALUES"
                    " (%s, now(), true, 12, false)", (device,))
        await s.sql("INSERT INTO readings (ts, device_id, resident_id, metric, value) VALUES"
                    " (now(), %s, %s, 'heart_rate', 72)", (device, s.resident(target)))
        await s.sql("INSERT INTO device_events (ts, device_id, resident_id, kind, msg_id) VALUES"
                    " (now(), %s, %s, 'motion', %s)", (device, s.resident(target), device))
        await s.sql("INSERT INTO visits (resident_id, visited_at, outcome) VALUES (%s, now(), 'well')",
                    (s.resident(target),))
        await s.sql("INSERT INTO dead_letters (topic, device_id, reason) VALUES (%s, %s, 'decode')",
                    (f"t/x/v1/wristband/{device}/sos", device))
    return s

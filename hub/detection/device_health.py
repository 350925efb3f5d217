"""Device health: offline, not worn for too long; thresholds come from each device type.

Silence is measured on the hub's clock (when a message last arrived, device_status.updated_at), not on
the device's own timestamps: watch clocks drift and simulated fleets run on a compressed past clock.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from alerts.model import ALERT_TYPES, Trigger
from devices.device_type import DeviceType
from hub.plugins import Registry
from hub.shutdown import raise_if_cancelled

log = logging.getLogger(__name__)

_QUERY = """
SELECT d.id, d.type, d.resident_id, r.household_id, h.region_path, s.updated_at, s.worn, s.worn_since
FROM devices d
JOIN device_status s ON s.device_id = d.id
JOIN residents r ON r.id = d.resident_id
JOIN households h ON h.id = r.household_id
JOIN unnest(%(types)s::text[], %(offline)s::float8[], %(wrist)s::float8[]) AS t(type, offline_s, wrist_s)
  ON t.type = d.type
WHERE d.status = 'active'
  AND (GREATEST(s.updated_at, %(since)s) < %(now)s - make_interval(secs => t.offline_s)
       OR (t.wrist_s IS NOT NULL AND s.worn = false AND s.worn_since < %(now)s - make_interval(secs => t.wrist_s)))
"""


async def check(pool: AsyncConnectionPool[Any], types: Registry[DeviceType], now: datetime,
                listening_since: datetime | None = None) -> list[Trigger]:
    """Alerts for devices silent past their type's limit or off the wrist too long.

    Silence is counted from `listening_since` at the earliest (when this hub started taking messages):
    while the hub itself was down or is still catching up, every device only looks silent.
    """
    keys = types.keys()
    params = {
        "types": keys,
        "offline": [types.get(k).offline_after_s for k in keys],
        "wrist": [types.get(k).off_wrist_max_s for k in keys],
        "now": now,
        "since": listening_since,
    }
    async with pool.connection() as conn:
        rows = await (await conn.execute(_QUERY, params)).fetchall()
    out = []
    for device_id, dtype, rid, hid, region, heard_at, _worn, worn_since in rows:
        limit = types.get(dtype).offline_after_s
        if max(heard_at, listening_since or heard_at) < now - timedelta(seconds=limit):
            kind, details = "device_offline", {"last_heard": heard_at.isoformat(), "limit_s": limit}
        else:
            kind, details = "device_removed", {"not_worn_since": worn_since.isoformat() if worn_since else None}
        out.append(Trigger(type=kind, severity=ALERT_TYPES[kind], ts=now, resident_id=rid, household_id=hid,
                           region_path=region, source_device=device_id,
                           details={"device_type": dtype, "source": "health", **details}))
    return out


async def run(pool: AsyncConnectionPool[Any], types: Registry[DeviceType], emit: Any, every_s: float = 60.0,
              listening_since: datetime | None = None) -> None:
    """Check on a schedule; a failed round is logged and retried."""
    while True:
        raise_if_cancelled()
        await asyncio.sleep(every_s)
        try:
            emit(await check(pool, types, datetime.now(UTC), listening_since))
        except psycopg.Error as err:
            log.warning("device health round failed: %s", type(err).__name__)

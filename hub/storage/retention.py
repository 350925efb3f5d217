"""Keeps history bounded: policies where the edition has them, scheduled drop_chunks or DELETE otherwise."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from hub.shutdown import raise_if_cancelled
from hub.storage.capabilities import Capabilities

log = logging.getLogger(__name__)


def plan(telemetry_days: int, imu_hours: int) -> dict[str, str]:
    """How long each time table is kept."""
    return {
        "readings": f"{telemetry_days} days",
        "device_events": f"{telemetry_days} days",
        "imu_batches": f"{imu_hours} hours",
    }


async def apply_once(pool: AsyncConnectionPool[Any], caps: Capabilities, keep: dict[str, str]) -> dict[str, int]:
    """Drop data older than its retention; returns chunks or rows removed per table."""
    removed: dict[str, int] = {}
    async with pool.connection() as conn:
        for table, age in keep.items():
            if caps.timescaledb:
                cur = await conn.execute("SELECT count(*) FROM drop_chunks(%s::regclass, older_than => %s::interval)",
                                         (table, age))
            else:
                cur = await conn.execute(
                    f"DELETE FROM {table} WHERE ts < now() - %s::interval",  # noqa: S608 - fixed table names
                    (age,),
                )
            row = await cur.fetchone() if caps.timescaledb else None
            removed[table] = int(row[0]) if row else cur.rowcount
        await conn.execute("DELETE FROM auth_tokens WHERE expires_at < now()")
        await conn.execute("DELETE FROM feed_events WHERE ts < now() - interval '7 days'")
    return removed


async def run(pool: AsyncConnectionPool[Any], caps: Capabilities, keep: dict[str, str],
              every_s: float = 3600.0) -> None:
    """Apply retention on a schedule; a failed run is logged and retried next time."""
    while True:
        raise_if_cancelled()
        try:
            removed = await apply_once(pool, caps, keep)
            if any(removed.values()):
                log.info("retention removed %s", removed)
        except psycopg.Error as err:
            log.warning("retention run failed: %s", type(err).__name__)
        await asyncio.sleep(every_s)

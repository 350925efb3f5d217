"""Keeps history bounded: the server's retention jobs where they exist, scheduled drop_chunks or DELETE otherwise.

Which time tables the server already bounds is read back each round (timescaledb_information.jobs), so a
job removed by hand is covered by the hub again on the next round. Tables that are never hypertables
(dead letters, the live feed, login tokens) are trimmed here on every edition.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from hub.shutdown import raise_if_cancelled
from hub.storage import capabilities
from hub.storage.capabilities import Capabilities
from hub.storage.policies import Plan

log = logging.getLogger(__name__)

# Ordinary tables and the column their age is measured by.
PLAIN_TABLES = {"dead_letters": "received_at", "feed_events": "ts"}


async def apply_once(pool: AsyncConnectionPool[Any], caps: Capabilities, plan: Plan) -> dict[str, int]:
    """Drop data older than its retention that no server job covers; returns chunks or rows removed per table."""
    removed: dict[str, int] = {}
    keep = plan.keep()
    plain_keep = {"dead_letters": plan.dead_letters_keep, "feed_events": plan.feed_keep}
    async with pool.connection() as conn:
        for table in capabilities.HYPERTABLES:
            if table in caps.retention_jobs:
                continue
            if caps.timescaledb:
                cur = await conn.execute("SELECT count(*) FROM drop_chunks(%s::regclass, older_than => %s::interval)",
                                         (table, keep[table]))
                row = await cur.fetchone()
                removed[table] = int(row[0]) if row else 0
            else:
                cur = await conn.execute(
                    f"DELETE FROM {table} WHERE ts < now() - %s::interval",  # noqa: S608 - fixed table names
                    (keep[table],))
                removed[table] = cur.rowcount
        for table, column in PLAIN_TABLES.items():
            cur = await conn.execute(
                f"DELETE FROM {table} WHERE {column} < now() - %s::interval",  # noqa: S608 - fixed names
                (plain_keep[table],))
            removed[table] = cur.rowcount
        await conn.execute("DELETE FROM auth_tokens WHERE expires_at < now()")
    return removed


async def run(pool: AsyncConnectionPool[Any], caps: Capabilities, plan: Plan,
              publish: Callable[[Capabilities], None] | None = None, every_s: float = 3600.0) -> None:
    """Apply retention on a schedule, re-reading the server's jobs first; a failed run is retried next time."""
    while True:
        raise_if_cancelled()
        try:
            async with pool.connection() as conn:
                caps = await capabilities.detect(conn)
            if publish is not None:
                publish(caps)
            removed = await apply_once(pool, caps, plan)
            if any(removed.values()):
                log.info("retention removed %s", removed)
        except psycopg.Error as err:
            log.warning("retention run failed: %s", type(err).__name__)
        await asyncio.sleep(every_s)

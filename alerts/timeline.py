"""Storage primitives every alert change uses: a timeline entry and a live-feed event, in the caller's transaction."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

DUE_CHANNEL = "eldercare_due"
"""NOTIFY channel for "an escalation step is due now": engines listen here, not to the busier live feed."""

FEED_CHANNEL = "eldercare_feed"
"""NOTIFY channel of the live feed; a trigger on feed_events sends it at commit (migration 0009)."""


async def add_event(conn: AsyncConnection[Any], alert_id: int, kind: str, actor: str,
                    details: dict[str, Any]) -> None:
    """Append one entry to an alert's timeline."""
    await conn.execute(
        "INSERT INTO alert_events (alert_id, kind, actor, details) VALUES (%s, %s, %s, %s)",
        (alert_id, kind, actor, Jsonb(details)),
    )


async def feed(conn: AsyncConnection[Any], kind: str, region_path: str, resident_id: str | None,
               payload: dict[str, Any]) -> None:
    """Publish a change to the live feed (same transaction as the change; the table's trigger notifies)."""
    await conn.execute(
        "INSERT INTO feed_events (kind, region_path, resident_id, payload) VALUES (%s, %s, %s, %s)",
        (kind, region_path, resident_id, Jsonb(payload)),
    )

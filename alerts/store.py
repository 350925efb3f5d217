"""Alerts in PostgreSQL: raise with deduplication, and record every step on the timeline."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from alerts.model import Trigger

DUE_CHANNEL = "eldercare_due"
"""NOTIFY channel for "an escalation step is due now": engines listen here, not to the busier live feed."""

_RAISE = """
INSERT INTO alerts (resident_id, household_id, region_path, type, severity, first_ts, last_ts,
                    source_device, location, details)
VALUES (%(resident_id)s, %(household_id)s, %(region_path)s, %(type)s, %(severity)s, %(ts)s, %(ts)s,
        %(source_device)s, %(location)s, %(details)s)
ON CONFLICT (resident_id, type) WHERE closed_at IS NULL DO UPDATE SET
  last_ts = GREATEST(alerts.last_ts, EXCLUDED.last_ts),
  trigger_count = alerts.trigger_count + 1,
  severity = CASE WHEN array_position(ARRAY['low','medium','high','critical'], EXCLUDED.severity)
                     > array_position(ARRAY['low','medium','high','critical'], alerts.severity)
                  THEN EXCLUDED.severity ELSE alerts.severity END,
  location = COALESCE(EXCLUDED.location, alerts.location),
  active = true,
  updated_at = now()
RETURNING id, (xmax = 0) AS created, severity
"""


async def add_event(conn: AsyncConnection[Any], alert_id: int, kind: str, actor: str,
                    details: dict[str, Any]) -> None:
    """Append one entry to an alert's timeline."""
    await conn.execute(
        "INSERT INTO alert_events (alert_id, kind, actor, details) VALUES (%s, %s, %s, %s)",
        (alert_id, kind, actor, Jsonb(details)),
    )


async def feed(conn: AsyncConnection[Any], kind: str, region_path: str, resident_id: str | None,
               payload: dict[str, Any]) -> None:
    """Publish a change to the live feed (same transaction as the change)."""
    await conn.execute(
        "INSERT INTO feed_events (kind, region_path, resident_id, payload) VALUES (%s, %s, %s, %s)",
        (kind, region_path, resident_id, Jsonb(payload)),
    )
    await conn.execute("SELECT pg_notify('eldercare_feed', %s)", (region_path,))


async def raise_alert(conn: AsyncConnection[Any], trigger: Trigger) -> tuple[int, bool]:
    """Create an alert, or refresh the open one of the same resident and type; (id, created)."""
    cur = await conn.execute(
        _RAISE,
        {
            "resident_id": trigger.resident_id,
            "household_id": trigger.household_id,
            "region_path": trigger.region_path,
            "type": trigger.type,
            "severity": trigger.severity,
            "ts": trigger.ts,
            "source_device": trigger.source_device,
            "location": Jsonb(trigger.location) if trigger.location else None,
            "details": Jsonb(trigger.details),
        },
    )
    row = await cur.fetchone()
    assert row is not None
    alert_id, created, severity = row
    event = {"type": trigger.type, "severity": severity, "device": trigger.source_device,
             "ts": trigger.ts.isoformat(), **trigger.details}
    await add_event(conn, alert_id, "created" if created else "retriggered", "system", event)
    if created:
        # The first escalation step is due now; the engine claims it with SKIP LOCKED, woken on commit.
        await conn.execute(
            "WITH t AS (INSERT INTO alert_timers (alert_id, step, due_at) VALUES (%s, 0, now())"
            " ON CONFLICT DO NOTHING RETURNING 1)"
            " SELECT pg_notify(%s, '') FROM t",
            (alert_id, DUE_CHANNEL),
        )
    await feed(conn, "alert", trigger.region_path, trigger.resident_id,
               {"alert_id": alert_id, "type": trigger.type, "severity": severity,
                "change": "created" if created else "retriggered"})
    return alert_id, created

"""The escalation engine: claims due alert timers from PostgreSQL and runs the policy's next step."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from alerts.store import add_event, feed
from hub.health import Health

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

# Default ladder by severity: (recipient kinds, seconds to wait for an acknowledgement).
DEFAULT_LADDER: dict[str, list[tuple[tuple[str, ...], float]]] = {
    "critical": [(("family", "community_worker"), 60), (("duty_officer", "call_centre"), 120), (("emergency",), 120)],
    "high": [(("family", "community_worker"), 300), (("duty_officer",), 900)],
    "medium": [(("community_worker",), 3600)],
    "low": [(("community_worker",), 86400)],
}


def system_clock() -> datetime:
    """Wall-clock UTC."""
    return datetime.now(UTC)


class Engine:
    """Runs escalation steps exactly once per step across any number of workers (SKIP LOCKED)."""

    def __init__(self, pool: AsyncConnectionPool[Any], health: Health, clock: Clock = system_clock) -> None:
        self._pool = pool
        self._health = health
        self._clock = clock
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """A new alert was committed: look for due timers now rather than at the next poll."""
        self._wake.set()

    async def run(self, poll_s: float = 1.0) -> None:
        """Poll for due steps; a database outage is logged and retried."""
        while True:
            try:
                while await self.tick():
                    pass
            except psycopg.Error as err:
                log.warning("escalation tick failed: %s", type(err).__name__)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), poll_s)

    async def tick(self, limit: int = 20) -> int:
        """Run every step that is due now; returns how many ran."""
        now = self._clock()
        async with self._pool.connection() as conn, conn.transaction():
            cur = conn.cursor(row_factory=dict_row)
            due = await (await cur.execute(
                "SELECT t.alert_id, t.step, t.reminders, a.severity, a.type, a.resident_id, a.region_path"
                " FROM alert_timers t JOIN alerts a ON a.id = t.alert_id"
                " WHERE t.due_at <= %s ORDER BY t.due_at LIMIT %s FOR UPDATE OF t SKIP LOCKED",
                (now, limit),
            )).fetchall()
            for row in due:
                await self._run_step(conn, row, now)
        return len(due)

    async def _run_step(self, conn: psycopg.AsyncConnection[Any], row: dict[str, Any], now: datetime) -> None:
        ladder = DEFAULT_LADDER.get(row["severity"], DEFAULT_LADDER["medium"])
        step = min(row["step"], len(ladder) - 1)
        recipients, wait_s = ladder[step]
        reminder = row["step"] >= len(ladder)
        for kind in recipients:
            await add_event(conn, row["alert_id"], "notified", "engine",
                            {"step": row["step"], "recipient_kind": kind, "channel": "console", "result": "ok",
                             "reminder": reminder})
            log.info("alert %s step %s: notified %s", row["alert_id"], row["step"], kind)
        self._health.count("escalation_steps")
        await conn.execute(
            "UPDATE alert_timers SET step = step + 1, due_at = %s, reminders = reminders + %s WHERE alert_id = %s",
            (now + timedelta(seconds=wait_s), 1 if reminder else 0, row["alert_id"]),
        )
        if step > 0 and not reminder:
            await add_event(conn, row["alert_id"], "escalated", "engine", {"to_step": row["step"]})
        await feed(conn, "alert", row["region_path"], row["resident_id"],
                   {"alert_id": row["alert_id"], "change": "notified", "step": row["step"]})

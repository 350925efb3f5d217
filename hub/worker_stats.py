"""Every worker's counters in the database, so worker 0's /health and /metrics cover all of them.

Only worker 0 serves HTTP. Workers 1..N-1 write a snapshot of their Health every few seconds;
worker 0 reads them (cached) and adds them to its own. A worker that stops writing is reported
stale rather than silently dropped, so shedding or dead letters in any worker stay visible.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from hub.health import Health

log = logging.getLogger(__name__)

PUBLISH_S = 5.0
STALE_S = 30.0  # six missed snapshots: the worker is down or cut off from the database
READ_S = 2.0  # worker 0 reads the table at most this often, however often /health or /metrics is asked

_DB_ERRORS = (psycopg.Error, PoolTimeout, OSError, TimeoutError)


@dataclass(frozen=True)
class WorkerStats:
    """One worker's last snapshot."""

    index: int
    ready: bool
    counters: dict[str, int]
    gauges: dict[str, float]
    age_s: float

    @property
    def stale(self) -> bool:
        """No snapshot for STALE_S seconds."""
        return self.age_s > STALE_S

    def as_dict(self) -> dict[str, Any]:
        """JSON shape for /health."""
        return {"worker": self.index, "ready": self.ready, "stale": self.stale, "age_s": round(self.age_s, 1),
                "counters": dict(sorted(self.counters.items())), "gauges": self.gauges}


async def publish(pool: AsyncConnectionPool[Any], index: int, health: Health,
                  report: Callable[[], dict[str, Any]]) -> None:
    """Write this worker's snapshot (report() refreshes the live gauges first)."""
    report()
    async with pool.connection(timeout=5.0) as conn:
        await conn.execute(
            "INSERT INTO worker_stats (worker_index, ready, counters, gauges, started_at, updated_at)"
            " VALUES (%s, %s, %s, %s, %s, now()) ON CONFLICT (worker_index) DO UPDATE SET"
            " ready = EXCLUDED.ready, counters = EXCLUDED.counters, gauges = EXCLUDED.gauges,"
            " started_at = EXCLUDED.started_at, updated_at = now()",
            (index, health.database.ok and health.broker.ok, Jsonb(dict(health.counters)),
             Jsonb(dict(health.gauges)), datetime.fromtimestamp(health.started, UTC)))


async def run(pool: AsyncConnectionPool[Any], index: int, health: Health, report: Callable[[], dict[str, Any]],
              every_s: float = PUBLISH_S) -> None:
    """Publish a snapshot every few seconds until cancelled; a database outage only skips snapshots."""
    while True:
        try:
            await publish(pool, index, health, report)
        except _DB_ERRORS as err:
            log.debug("worker stats not written: %s", type(err).__name__)
        await asyncio.sleep(every_s)


class Others:
    """Worker 0's cached view of the other workers' snapshots."""

    def __init__(self, pool: AsyncConnectionPool[Any], own_index: int, workers: int) -> None:
        self._pool = pool
        self._own = own_index
        self._workers = workers  # rows of workers beyond the configured count are left from older runs
        self._read = 0.0
        self._lock = asyncio.Lock()
        self.workers: list[WorkerStats] = []

    async def refresh(self) -> list[WorkerStats]:
        """The others' latest snapshots; on a database outage, the last ones read."""
        async with self._lock:
            if time.monotonic() - self._read < READ_S:
                return self.workers
            self._read = time.monotonic()
            try:
                async with self._pool.connection(timeout=2.0) as conn:
                    rows = await (await conn.execute(
                        "SELECT worker_index, ready, counters, gauges, extract(epoch FROM now() - updated_at)"
                        " FROM worker_stats WHERE worker_index <> %s AND worker_index < %s ORDER BY worker_index",
                        (self._own, self._workers))).fetchall()
            except _DB_ERRORS as err:
                log.warning("worker stats not read: %s", type(err).__name__)
                return self.workers
            self.workers = [WorkerStats(int(i), bool(r), dict(c), dict(g), float(a)) for i, r, c, g, a in rows]
            return self.workers


def combined(own: dict[str, int], others: list[WorkerStats]) -> dict[str, int]:
    """Counters summed over this worker and the others (stale ones included: their counts happened)."""
    total = dict(own)
    for worker in others:
        for key, value in worker.counters.items():
            total[key] = total.get(key, 0) + int(value)
    return total

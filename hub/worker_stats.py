"""Every hub process's counters in the database, so worker 0's /health and /metrics cover all of them.

Only worker 0 serves HTTP. Workers 1..N-1 and the escalation process write a snapshot of their
Health every few seconds, each under its process name; worker 0 reads them (cached) and adds them
to its own. A process that stops writing is reported stale rather than silently dropped, so
shedding, dead letters or failed notifications anywhere stay visible.
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
from hub.shutdown import raise_if_cancelled

log = logging.getLogger(__name__)

PUBLISH_S = 5.0
STALE_S = 30.0  # six missed snapshots: the worker is down or cut off from the database
READ_S = 2.0  # worker 0 reads the table at most this often, however often /health or /metrics is asked

_DB_ERRORS = (psycopg.Error, PoolTimeout, OSError, TimeoutError)


@dataclass(frozen=True)
class WorkerStats:
    """One process's last snapshot."""

    process: str
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
        return {"process": self.process, "ready": self.ready, "stale": self.stale, "age_s": round(self.age_s, 1),
                "counters": dict(sorted(self.counters.items())), "gauges": self.gauges}


def worker_name(index: int) -> str:
    """The process name ingestion worker `index` publishes under."""
    return f"worker-{index}"


ESCALATION = "escalation"


async def publish(pool: AsyncConnectionPool[Any], process: str, health: Health,
                  report: Callable[[], dict[str, Any]]) -> None:
    """Write this process's snapshot (report() refreshes the live gauges first)."""
    report()
    async with pool.connection(timeout=5.0) as conn:
        await conn.execute(
            "INSERT INTO worker_stats (process, ready, counters, gauges, started_at, updated_at)"
            " VALUES (%s, %s, %s, %s, %s, now()) ON CONFLICT (process) DO UPDATE SET"
            " ready = EXCLUDED.ready, counters = EXCLUDED.counters, gauges = EXCLUDED.gauges,"
            " started_at = EXCLUDED.started_at, updated_at = now()",
            (process, health.database.ok and (health.broker.ok or process == ESCALATION), Jsonb(dict(health.counters)),
             Jsonb(dict(health.gauges)), datetime.fromtimestamp(health.started, UTC)))


async def run(pool: AsyncConnectionPool[Any], process: str, health: Health, report: Callable[[], dict[str, Any]],
              every_s: float = PUBLISH_S) -> None:
    """Publish a snapshot every few seconds until cancelled; a database outage only skips snapshots."""
    while True:
        raise_if_cancelled()
        try:
            await publish(pool, process, health, report)
        except _DB_ERRORS as err:
            log.debug("worker stats not written: %s", type(err).__name__)
        await asyncio.sleep(every_s)


class Others:
    """Worker 0's cached view of the other processes' snapshots."""

    def __init__(self, pool: AsyncConnectionPool[Any], expected: list[str]) -> None:
        self._pool = pool
        self.expected = expected  # rows of other processes are left from older runs with more workers
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
                        "SELECT process, ready, counters, gauges, extract(epoch FROM now() - updated_at)"
                        " FROM worker_stats WHERE process = ANY(%s) ORDER BY process", (self.expected,))).fetchall()
            except _DB_ERRORS as err:
                log.warning("worker stats not read: %s", type(err).__name__)
                return self.workers
            self.workers = [WorkerStats(str(n), bool(r), dict(c), dict(g), float(a)) for n, r, c, g, a in rows]
            return self.workers


    def report(self) -> list[dict[str, Any]]:
        """Every expected process for /health, a missing one as not ready and stale."""
        seen = {w.process: w for w in self.workers}
        return [seen[name].as_dict() if name in seen else
                {"process": name, "ready": False, "stale": True, "age_s": None, "counters": {}, "gauges": {}}
                for name in self.expected]

    def up(self) -> dict[str, bool]:
        """Expected process → ready with a fresh snapshot."""
        seen = {w.process: w for w in self.workers}
        return {name: name in seen and seen[name].ready and not seen[name].stale for name in self.expected}


def combined(own: dict[str, int], others: list[WorkerStats]) -> dict[str, int]:
    """Counters summed over this process and the others (stale ones included: their counts happened)."""
    total = dict(own)
    for worker in others:
        for key, value in worker.counters.items():
            total[key] = total.get(key, 0) + int(value)
    return total

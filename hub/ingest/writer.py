"""Batched, idempotent writes: set-based inserts in one pipelined transaction per batch, acks only after commit.

Two lanes, each with its own batch and connection: SOS, falls, alarms, check-ins and critical alerts take the
urgent lane, so they commit in a small transaction of their own instead of waiting behind the telemetry batch
being written (tens of milliseconds under load) and then riding in the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from alerts.model import Binding, Trigger
from alerts.store import raise_alert
from devices.observation import Observation
from hub.health import Health
from hub.shutdown import raise_if_cancelled

log = logging.getLogger(__name__)

Ack = Callable[[], None]

_STATUS_UPSERT = """
INSERT INTO device_status (device_id, last_seen, online, battery, signal, worn, tamper, last_location, updated_at)
SELECT d, s, o, b, g, w, t, l, now()
FROM unnest(%b::text[], %b::timestamptz[], %b::bool[], %b::real[], %b::real[], %b::bool[], %b::bool[],
            %b::jsonb[]) AS u(d, s, o, b, g, w, t, l)
ON CONFLICT (device_id) DO UPDATE SET
  last_seen = GREATEST(device_status.last_seen, EXCLUDED.last_seen),
  online = COALESCE(EXCLUDED.online, device_status.online),
  battery = COALESCE(EXCLUDED.battery, device_status.battery),
  signal = COALESCE(EXCLUDED.signal, device_status.signal),
  worn = COALESCE(EXCLUDED.worn, device_status.worn),
  worn_since = CASE WHEN EXCLUDED.worn IS NOT NULL AND EXCLUDED.worn IS DISTINCT FROM device_status.worn
                    THEN EXCLUDED.last_seen ELSE device_status.worn_since END,
  tamper = COALESCE(EXCLUDED.tamper, device_status.tamper),
  last_location = COALESCE(EXCLUDED.last_location, device_status.last_location),
  updated_at = now()
"""

# Column arrays go in binary (%b): psycopg's text array format quotes every element with a regex.
_READINGS_INSERT = """
INSERT INTO readings (ts, device_id, resident_id, metric, value)
SELECT * FROM unnest(%b::timestamptz[], %b::text[], %b::text[], %b::text[], %b::float8[])
"""
_IMU_INSERT = """
INSERT INTO imu_batches (ts, device_id, rate_hz, n, samples)
SELECT * FROM unnest(%b::timestamptz[], %b::text[], %b::real[], %b::int[], %b::bytea[])
"""
# The unique (device, message id, ts) key makes a redelivery a no-op; RETURNING names the first deliveries.
_EVENTS_INSERT = """
INSERT INTO device_events (ts, device_id, resident_id, household_id, kind, msg_id, room, data, received_at)
SELECT * FROM unnest(%b::timestamptz[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[],
                     %b::jsonb[], %b::timestamptz[])
ON CONFLICT DO NOTHING
RETURNING device_id, msg_id
"""


@dataclass
class Batch:
    """Everything written in one transaction, and the acknowledgements it releases."""

    readings: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    event_triggers: dict[tuple[str, str], list[Trigger]] = field(default_factory=dict)
    triggers: list[Trigger] = field(default_factory=list)
    status: dict[str, dict[str, Any]] = field(default_factory=dict)
    imu: list[tuple[Any, ...]] = field(default_factory=list)
    dead: list[tuple[Any, ...]] = field(default_factory=list)
    acks: list[Ack] = field(default_factory=list)
    critical: bool = False
    messages: int = 0
    first_added: float = 0.0

    def __len__(self) -> int:
        return len(self.readings) + len(self.events) + len(self.imu) + len(self.dead) + len(self.triggers)


class _Lane:
    """One stream of batches written in order on one kept connection."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.batch = Batch()
        self.wake = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()
        self.conn: psycopg.AsyncConnection[Any] | None = None


@dataclass(frozen=True)
class Committed:
    """What one committed batch produced: alerts created or refreshed, and counts."""

    alerts: list[tuple[int, bool, Trigger]]
    messages: int
    duplicates: int


class Writer:
    """Collects observations into batches and writes them; retries with backoff while the database is away."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        health: Health,
        batch_max: int,
        flush_ms: int,
        on_committed: Callable[[Committed], Awaitable[None]] | None = None,
        backlog_max: int = 50_000,
    ) -> None:
        self._pool = pool
        self._health = health
        self._batch_max = batch_max
        self._flush_s = flush_ms / 1000
        self._on_committed = on_committed
        self._backlog_max = backlog_max
        self._main = _Lane("main")
        self._urgent = _Lane("urgent")
        self._room = asyncio.Event()
        self._room.set()

    # --- adding -------------------------------------------------------------------------------

    def _start(self, lane: _Lane) -> Batch:
        batch = lane.batch
        if not batch.messages and not len(batch):
            batch.first_added = time.monotonic()
            lane.wake.set()  # an idle lane starts its flush timer now
        lane.idle.clear()
        return batch

    def _lane(self, urgent: bool, triggers: list[Trigger]) -> _Lane:
        if urgent or any(t.severity == "critical" for t in triggers):
            return self._urgent
        return self._main

    def add(self, obs: Observation, binding: Binding, triggers: list[Trigger], ack: Ack | None,
            received: datetime, urgent: bool = False) -> None:
        """Queue one decoded observation with the alerts it raises (urgent: SOS, fall, alarm, check-in)."""
        lane = self._lane(urgent, triggers)
        batch = self._start(lane)
        batch.messages += 1
        for metric, value in obs.readings:
            batch.readings.append((obs.ts, obs.device_id, binding.resident_id, metric, value))
        if obs.imu is not None:
            batch.imu.append((obs.ts, obs.device_id, obs.imu.rate_hz, len(obs.imu.samples),
                              obs.imu.samples.astype("<f4").tobytes()))
        elif obs.kind not in {"heartbeat"}:
            data = dict(obs.data)
            if obs.location is not None:
                data["location"] = obs.location.as_dict()
            batch.events.append((obs.ts, obs.device_id, binding.resident_id, binding.household_id, obs.kind,
                                 obs.msg_id, binding.room, json.dumps(data, default=str), received))
            if triggers:
                # A redelivery inside the same batch must not raise the alert twice.
                batch.event_triggers.setdefault((obs.device_id, obs.msg_id), triggers)
                triggers = []
        batch.triggers.extend(triggers)
        self._merge_status(batch, obs)
        if ack is not None:
            batch.acks.append(ack)
        if obs.critical:
            batch.critical = True
        self._after_add(lane, batch)

    def add_triggers(self, triggers: list[Trigger]) -> None:
        """Queue alerts raised by detectors rather than by a single message."""
        if triggers:
            lane = self._lane(False, triggers)
            batch = self._start(lane)
            batch.triggers.extend(triggers)
            batch.critical = True
            self._after_add(lane, batch)

    def dead_letter(self, topic: str, device_id: str | None, reason: str, detail: str, payload: bytes,
                    ack: Ack | None) -> None:
        """Queue a message that could not be used, with why."""
        batch = self._start(self._main)
        batch.messages += 1
        batch.dead.append((topic[:512], device_id, reason, detail[:500], payload[:4096]))
        if ack is not None:
            batch.acks.append(ack)
        self._after_add(self._main, batch)

    def _merge_status(self, batch: Batch, obs: Observation) -> None:
        merged = batch.status.setdefault(obs.device_id, {"last_seen": obs.ts})
        merged["last_seen"] = max(obs.ts, merged["last_seen"])
        merged.update(obs.status)
        if obs.kind != "availability":
            merged["online"] = True
        if obs.location is not None:
            merged["last_location"] = {**obs.location.as_dict(), "ts": obs.ts.isoformat()}

    def _after_add(self, lane: _Lane, batch: Batch) -> None:
        if batch.critical or len(batch) >= self._batch_max:
            lane.wake.set()
        if lane is self._main and len(batch) >= self._backlog_max:
            self._room.clear()

    async def wait_for_room(self) -> None:
        """Backpressure: the consumer waits here while a stuck database has the backlog full."""
        await self._room.wait()

    async def drain(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 - bounded shutdown
        """Wait until everything queued so far is committed (tests and shutdown)."""
        async def both() -> None:
            for lane in (self._urgent, self._main):
                lane.wake.set()
                await lane.idle.wait()

        await asyncio.wait_for(both(), timeout)

    # --- writing ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Flush by size, by criticality, or when the oldest item has waited flush_ms; both lanes."""
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._run(self._main), name="writer-main")
                tg.create_task(self._run(self._urgent), name="writer-urgent")
        finally:
            await self._release(self._main)
            await self._release(self._urgent)

    async def _run(self, lane: _Lane) -> None:
        attempt = 0
        while True:
            raise_if_cancelled()
            batch = lane.batch
            if not batch.messages and not len(batch):
                lane.idle.set()
                lane.wake.clear()
                await lane.wake.wait()
                continue
            wait = self._flush_s - (time.monotonic() - batch.first_added)
            if wait > 0 and not batch.critical and len(batch) < self._batch_max:
                lane.wake.clear()
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that
                # arrives as the event is set, and the writer would then never stop.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await lane.wake.wait()
                continue
            lane.batch = Batch()
            while True:
                raise_if_cancelled()
                try:
                    committed = await self._write(lane, batch)
                    break
                except psycopg.errors.DeadlockDetected:
                    # The lanes lock status rows in one order, but alerts raised by both could still cross:
                    # PostgreSQL aborts one transaction, which is simply written again.
                    await self._release(lane)
                    self._health.count("db_write_deadlocks")
                    log.warning("database write hit a deadlock; writing the %s batch again", lane.name)
                except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as err:
                    # Keep the batch; nothing is acknowledged until it is in the database.
                    await self._release(lane)
                    self._health.database.down(f"write failed: {type(err).__name__}")
                    attempt += 1
                    delay = min(10.0, 0.2 * 2 ** min(attempt, 6)) * random.uniform(0.5, 1.0)  # noqa: S311
                    log.warning("database write failed (%s); retrying in %.1f s", type(err).__name__, delay)
                    await asyncio.sleep(delay)
            attempt = 0
            self._health.database.up()
            for ack in batch.acks:
                ack()
            if lane is self._main:
                self._room.set()
            if self._on_committed is not None and (committed.alerts or committed.messages):
                await self._on_committed(committed)

    async def _connection(self, lane: _Lane) -> psycopg.AsyncConnection[Any]:
        # Each lane keeps one connection between batches: borrowing one per batch cost a health-check
        # round trip each time, and every round trip waits for a turn of a busy event loop.
        if lane.conn is None or lane.conn.closed:
            conn = await self._pool.getconn()
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                await conn.commit()  # the pool's health check leaves its SELECT 1 open
            lane.conn = conn
        return lane.conn

    async def _release(self, lane: _Lane) -> None:
        """Give a lane's connection back to the pool (after a failure the pool discards a broken one)."""
        conn, lane.conn = lane.conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error, PoolTimeout):
                await self._pool.putconn(conn)

    async def _write(self, lane: _Lane, batch: Batch) -> Committed:
        started = time.perf_counter()
        alerts: list[tuple[int, bool, Trigger]] = []
        duplicates = 0
        conn = await self._connection(lane)
        # One pipelined round trip sends the whole batch (set-based inserts of column arrays); only BEGIN,
        # the events' RETURNING, alerts and COMMIT wait for answers. The transaction is entered first:
        # inside a pipeline psycopg would take it for a nested one (a savepoint) and never commit.
        async with conn.transaction(), conn.pipeline() as pipe:
            cur = conn.cursor()
            if batch.readings:
                await cur.execute(_READINGS_INSERT, _columns(batch.readings, 5))
            if batch.imu:
                await cur.execute(_IMU_INSERT, _columns(batch.imu, 5))
            if batch.status:
                await cur.execute(_STATUS_UPSERT, _status_columns(batch.status))
            if batch.dead:
                await cur.executemany(
                    "INSERT INTO dead_letters (topic, device_id, reason, detail, payload) VALUES (%s, %s, %s, %s, %s)",
                    batch.dead,
                )
            new_events: set[tuple[str, str]] = set()
            if batch.events:
                events = conn.cursor()
                await events.execute(_EVENTS_INSERT, _columns(batch.events, 9))
                await pipe.sync()
                new_events = {(r[0], r[1]) for r in await events.fetchall()}
                duplicates = len(batch.events) - len(new_events)
            # Only a first delivery raises alerts; a redelivered message finds its event already stored.
            due = [t for key, ts in batch.event_triggers.items() if key in new_events for t in ts]
            for trigger in due + batch.triggers:
                alert_id, created = await raise_alert(conn, trigger)
                alerts.append((alert_id, created, trigger))
        elapsed_ms = (time.perf_counter() - started) * 1000
        self._health.gauges["db_write_ms_last" if lane is self._main else "db_write_ms_last_urgent"] = round(
            elapsed_ms, 2)
        self._health.observe("db_write_seconds", elapsed_ms / 1000)
        for _, created, trigger in alerts:
            if created:
                self._health.count(f"alerts_raised.{trigger.type}")
        self._health.count("rows_written", len(batch))
        self._health.count("messages_committed", batch.messages)
        if duplicates:
            self._health.count("duplicates_ignored", duplicates)
        return Committed(alerts, batch.messages, duplicates)


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[Any]:
    """Rows as one list per column (the parameters of an unnest insert)."""
    return [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


def _status_columns(status: dict[str, dict[str, Any]]) -> tuple[list[Any], ...]:
    ids = sorted(status)  # both lanes lock status rows in the same order, so they cannot deadlock on them
    col = [status[d] for d in ids]
    return (
        ids,
        [s["last_seen"] for s in col],
        [s.get("online") for s in col],
        [s.get("battery") for s in col],
        [s.get("signal") for s in col],
        [s.get("worn") for s in col],
        [s.get("tamper") for s in col],
        [json.dumps(s["last_location"]) if s.get("last_location") else None for s in col],
    )

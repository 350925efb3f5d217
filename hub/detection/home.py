"""Runs the home detectors live: one HomeMonitor per resident, fed by door/motion/bed events, ticked each minute."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from alerts.model import ALERT_TYPES, SEVERITY_RANK, Binding, Trigger
from devices.observation import Observation
from hub.detection.activity_profile import profile_from_counts
from hub.detection.home_events import AlertTrigger, DetectionError, HomeEvent, room_role
from hub.detection.home_monitor import HomeMonitor, ResidentConfig
from hub.detection.routine import RoutineConfig
from hub.shutdown import raise_if_cancelled

log = logging.getLogger(__name__)

_DETECTOR = "home"
_SLICE = 500  # monitors per slice of a periodic round; about 1 ms of tick, 6 ms of snapshots


def home_event(obs: Observation, binding: Binding) -> HomeEvent | None:
    """The home-detector view of an observation, or None when it says nothing about activity.

    The room and the kind come from provisioning: the device's room (devices.room) and its type. A
    door or motion sensor in an entrance guards the exit; a pressure mat outside a bedroom is a seat.
    """
    room = binding.room or ""
    role = room_role(room)
    exit_ = role == "entrance"
    data = obs.data
    if obs.kind == "door":
        return HomeEvent(obs.ts, obs.device_id, "door", room, exit_, data["contact"])
    if obs.kind == "motion":
        return HomeEvent(obs.ts, obs.device_id, "motion", room, exit_, "on" if data["motion"] else "off")
    if obs.kind == "bed":
        return _mat_event(obs, room, role)
    if obs.kind == "radar" and "presence" in data:
        return HomeEvent(obs.ts, obs.device_id, "motion", room, False, "on" if data["presence"] else "off")
    if obs.kind == "checkin":
        return HomeEvent(obs.ts, obs.device_id, "checkin", room, False, "press")
    return None


def _mat_event(obs: Observation, room: str, role: str) -> HomeEvent:
    """A pressure mat: the bed in a bedroom (or an unnamed room), a seat anywhere else."""
    occupied = bool(obs.data["occupied"])
    if role in ("bedroom", "other"):
        return HomeEvent(obs.ts, obs.device_id, "bed", room, False, "occupied" if occupied else "empty")
    return HomeEvent(obs.ts, obs.device_id, "item", room, False, "on" if occupied else "off")


# Hour-of-week activity per resident, computed in the database: how often each hour of the week had
# at least one activity event, over the weeks since the resident's first event (at most `weeks`).
_PROFILE_SQL = """
WITH ev AS (
  SELECT e.resident_id, {bucket} AS bucket, count(*) AS events
  FROM device_events e
  WHERE e.resident_id = ANY(%(rids)s) AND e.ts >= %(now)s - make_interval(weeks => %(weeks)s)
    AND e.ts < %(now)s
    AND (e.kind IN ('door', 'bed', 'checkin') OR (e.kind = 'motion' AND e.data->>'motion' = 'true')
         OR (e.kind = 'radar' AND e.data->>'presence' = 'true'))
  GROUP BY 1, 2
), first AS (SELECT resident_id, min(bucket) AS since FROM ev GROUP BY 1),
hours AS (
  SELECT f.resident_id, h AS bucket
  FROM first f, generate_series(f.since, {now_bucket} - interval '1 hour', interval '1 hour') AS h
)
SELECT h.resident_id,
       ((extract(isodow FROM h.bucket AT TIME ZONE r.timezone)::int - 1) * 24
        + extract(hour FROM h.bucket AT TIME ZONE r.timezone)::int) AS hour_of_week,
       avg(coalesce(ev.events, 0))::float8 AS mean_events,
       avg((coalesce(ev.events, 0) > 0)::int)::float8 AS share_active,
       count(*)::int AS weeks_observed
FROM hours h JOIN residents r ON r.id = h.resident_id
LEFT JOIN ev USING (resident_id, bucket)
GROUP BY 1, 2 ORDER BY 1, 2
"""


def profile_sql(timescaledb: bool) -> str:
    """The profile query, bucketed with time_bucket where TimescaleDB is present."""
    if timescaledb:
        return _PROFILE_SQL.format(bucket="time_bucket('1 hour', e.ts)",
                                   now_bucket="time_bucket('1 hour', %(now)s::timestamptz)")
    return _PROFILE_SQL.format(bucket="date_trunc('hour', e.ts)", now_bucket="date_trunc('hour', %(now)s::timestamptz)")


def resident_config(resident_id: str, flags: list[str], timezone: str | None) -> ResidentConfig:
    """Detector settings that follow from the resident's risk flags."""
    wandering = bool({"dementia", "wandering"} & set(flags))
    return ResidentConfig(resident_id=resident_id, timezone=timezone, routine=RoutineConfig(wandering_risk=wandering))


class HomeWatch:
    """Keeps a monitor per resident; its state is saved to detector_state so restarts carry on."""

    def __init__(self, pool: AsyncConnectionPool[Any], owns: Callable[[str], bool] = lambda _: True) -> None:
        self._pool = pool
        self._owns = owns  # with several workers, each keeps only its residents' monitors
        self._monitors: dict[str, HomeMonitor] = {}
        self._where: dict[str, tuple[str, str]] = {}  # resident → (household, region)
        self._configured: set[str] = set()
        self._dirty: set[str] = set()
        # Resident's device clock minus the hub's, from the latest event: monitors tick on device time so
        # a drifting clock or a time-compressed simulation does not look like hours of silence.
        self._offset: dict[str, float] = {}

    async def load(self) -> int:
        """Restore every saved monitor (start-up)."""
        async with self._pool.connection() as conn:
            rows = await (await conn.execute(
                "SELECT s.subject, s.state, r.risk_flags, r.timezone, r.household_id, h.region_path"
                " FROM detector_state s JOIN residents r ON r.id = s.subject"
                " JOIN households h ON h.id = r.household_id WHERE s.detector = %s", (_DETECTOR,))).fetchall()
        for rid, state, flags, tz, hid, region in rows:
            if not self._owns(rid):
                continue
            try:
                self._monitors[rid] = HomeMonitor.from_snapshot(state, config=resident_config(rid, flags, tz))
            except DetectionError:
                log.warning("discarding unreadable home-monitor state of resident %s", rid)
                continue
            self._where[rid] = (hid, region)
            self._configured.add(rid)
        return len(rows)

    def observe(self, obs: Observation, binding: Binding) -> list[Trigger]:
        """Feed one observation to its resident's monitor."""
        rid = binding.resident_id
        if rid is None or binding.household_id is None or binding.region_path is None:
            return []
        event = home_event(obs, binding)
        if event is None:
            return []
        monitor = self._monitors.get(rid)
        if monitor is None:
            monitor = self._monitors[rid] = HomeMonitor(ResidentConfig(resident_id=rid, timezone="Asia/Shanghai"))
        self._where[rid] = (binding.household_id, binding.region_path)
        self._offset[rid] = event.ts.timestamp() - time.time()
        self._dirty.add(rid)
        return [self._trigger(rid, t, obs.device_id) for t in monitor.observe(event)]

    def tick(self, now: datetime, rids: Iterable[str] | None = None) -> list[Trigger]:
        """Advance every monitor's clock (or those of `rids`); returns what became due."""
        out: list[Trigger] = []
        for rid in self._monitors if rids is None else rids:
            monitor = self._monitors[rid]
            due = monitor.tick(now + timedelta(seconds=self._offset.get(rid, 0.0)))
            if due:
                self._dirty.add(rid)
                out.extend(self._trigger(rid, t, None) for t in due)
        return out

    def _trigger(self, rid: str, t: AlertTrigger, device: str | None) -> Trigger:
        hid, region = self._where[rid]
        severity = t.severity if t.severity in SEVERITY_RANK else ALERT_TYPES.get(t.type, "high")
        return Trigger(type=t.type, severity=severity, ts=t.ts, resident_id=rid, household_id=hid,
                       region_path=region, source_device=device, details={"source": "home", **t.details})

    async def configure_new(self) -> None:
        """Give residents seen for the first time their real settings (risk flags, time zone)."""
        new = [rid for rid in self._monitors if rid not in self._configured]
        if not new:
            return
        async with self._pool.connection() as conn:
            rows = await (await conn.execute(
                "SELECT id, risk_flags, timezone FROM residents WHERE id = ANY(%s)", (new,))).fetchall()
        for rid, flags, tz in rows:
            current = self._monitors[rid]
            self._monitors[rid] = HomeMonitor.from_snapshot(current.state_snapshot(),
                                                            config=resident_config(rid, flags, tz))
            self._configured.add(rid)

    async def refresh_profiles(self, timescaledb: bool, now: datetime, weeks: int = 8, chunk: int = 500) -> int:
        """Learn every owned resident's hour-of-week baseline from events stored before ``now``; returns how many."""
        rids = list(self._monitors)
        learned = 0
        for start in range(0, len(rids), chunk):
            async with self._pool.connection() as conn:
                rows = await (await conn.execute(profile_sql(timescaledb),
                                                 {"rids": rids[start:start + chunk], "weeks": weeks,
                                                  "now": now})).fetchall()
            by_resident: dict[str, list[tuple[int, float, float, int]]] = {}
            for rid, how, mean, share, seen in rows:
                by_resident.setdefault(rid, []).append((how, mean, share, seen))
            for rid, cells in by_resident.items():
                if rid in self._monitors:
                    self._monitors[rid].update_profile(profile_from_counts(cells))
                    learned += 1
        return learned

    async def tick_all(self, now: datetime) -> list[Trigger]:
        """`tick` over every monitor in slices, yielding between them so ingestion never stalls."""
        out: list[Trigger] = []
        rids = list(self._monitors)
        for start in range(0, len(rids), _SLICE):
            out.extend(self.tick(now, rids[start:start + _SLICE]))
            await asyncio.sleep(0)
        return out

    async def save(self) -> int:
        """Persist the monitors that changed since the last save, a slice at a time."""
        dirty, self._dirty = list(self._dirty), set()
        saved = 0
        for start in range(0, len(dirty), _SLICE):
            # Snapshots are built and encoded on the event loop: a slice at a time, so that tens of
            # thousands of residents do not hold up the SOS behind them.
            rows = [(rid, _DETECTOR, Jsonb(self._monitors[rid].state_snapshot()))
                    for rid in dirty[start:start + _SLICE] if rid in self._monitors]
            if rows:
                async with self._pool.connection() as conn, conn.cursor() as cur:
                    await cur.executemany(
                        "INSERT INTO detector_state (subject, detector, state) VALUES (%s, %s, %s)"
                        " ON CONFLICT (subject, detector) DO UPDATE SET state = EXCLUDED.state, updated_at = now()",
                        rows)
                saved += len(rows)
            await asyncio.sleep(0)
        return saved

    async def run(self, emit: Any, timescaledb: bool, every_s: float = 60.0, profile_every_s: float = 6 * 3600
                  ) -> None:
        """Tick once a minute, raise what is due, and save state; relearn baselines every few hours."""
        next_profiles = 0.0
        while True:
            raise_if_cancelled()
            await asyncio.sleep(every_s)
            try:
                if time.monotonic() >= next_profiles:
                    next_profiles = time.monotonic() + profile_every_s
                    await self.refresh_profiles(timescaledb, datetime.now(UTC))
                await self.configure_new()
                emit(await self.tick_all(datetime.now(UTC)))
                await self.save()
            except psycopg.Error as err:
                log.warning("home detection round failed: %s", type(err).__name__)

    def __len__(self) -> int:
        return len(self._monitors)

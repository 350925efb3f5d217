"""Live home detection: observations map to home events, and monitor state survives a restart."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from alerts.model import Binding
from devices.observation import Observation
from hub.detection.home import HomeWatch, home_event

DOOR = Binding("D1", "door", "R1", "HR1", "sz/futian/lianhua", "entrance")
MOTION = Binding("M1", "motion", "R1", "HR1", "sz/futian/lianhua", "living_room")


def test_rooms_and_kinds_come_from_provisioning():
    t = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
    sofa = Binding("B2", "bed", "R1", "HR1", "sz/futian/lianhua", "Living room")
    bed = Binding("B1", "bed", "R1", "HR1", "sz/futian/lianhua", "Bedroom 1")
    back = Binding("D2", "door", "R1", "HR1", "sz/futian/lianhua", "Kitchen")
    front = Binding("D3", "door", "R1", "HR1", "sz/futian/lianhua", "Front door")
    seat = home_event(Observation("B2", "bed", t, "a", data={"occupied": True}), sofa)
    mat = home_event(Observation("B1", "bed", t, "b", data={"occupied": True}), bed)
    cupboard = home_event(Observation("D2", "door", t, "c", data={"contact": "open"}), back)
    exit_door = home_event(Observation("D3", "door", t, "d", data={"contact": "open"}), front)
    assert seat is not None and (seat.kind, seat.state) == ("item", "on")  # a pressure mat on the sofa
    assert mat is not None and (mat.kind, mat.state) == ("bed", "occupied")
    assert cupboard is not None and not cupboard.exit
    assert exit_door is not None and exit_door.exit


def test_observations_become_home_events():
    t = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
    door = home_event(Observation("D1", "door", t, "a", data={"contact": "open"}), DOOR)
    motion = home_event(Observation("M1", "motion", t, "b", data={"motion": True}), MOTION)
    heartbeat = home_event(Observation("M1", "heartbeat", t, "c"), MOTION)
    assert door is not None and (door.kind, door.exit, door.state) == ("door", True, "open")
    assert motion is not None and (motion.kind, motion.exit, motion.state) == ("motion", False, "on")
    assert heartbeat is None


@pytest.mark.anyio
async def test_silence_after_activity_raises_inactivity_and_state_survives_restart(db_url, world):
    await world.resident("R1")
    async with AsyncConnectionPool(db_url, min_size=1, max_size=2, open=False) as pool:
        watch = HomeWatch(pool)
        # Local noon in Shanghai: a resident moving about, then nothing.
        t = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)
        for i in range(20):
            watch.observe(Observation("M1", "motion", t + timedelta(minutes=3 * i), f"m{i}",
                                      data={"motion": True}), MOTION)
        await watch.configure_new()
        assert await watch.save() == 1

        restarted = HomeWatch(pool)
        assert await restarted.load() == 1
        fired = []
        for minutes in range(60, 8 * 60, 5):
            fired += restarted.tick(t + timedelta(minutes=minutes))
    kinds = [f.type for f in fired]
    assert "inactivity" in kinds
    assert kinds.count("inactivity") == 1  # one trigger per silent episode
    first = next(f for f in fired if f.type == "inactivity")
    assert first.ts - (t + timedelta(minutes=57)) <= timedelta(hours=3)
    assert first.resident_id == "R1" and first.region_path == "sz/futian/lianhua"
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        row = await (await conn.execute("SELECT detector FROM detector_state WHERE subject = 'R1'")).fetchone()
    assert row == ("home",)


@pytest.mark.anyio
@pytest.mark.parametrize("timescaledb", [True, False])
async def test_baseline_is_learned_from_stored_events(db_url, world, timescaledb):
    await world.resident("R1")
    # The profile covers the weeks up to the `now` it is given, never the real clock.
    now = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
    start = now.replace(hour=0) - timedelta(days=10)  # 08:00 in Shanghai
    stamps = [start + timedelta(hours=k) for k in range(int((now - start).total_seconds() // 3600))]
    rows = [(ts + timedelta(minutes=5), "M1", "R1", "motion", f"m{k}", '{"motion": true}')
            for k, ts in enumerate(stamps) if ts.hour < 12]  # busy 08:00-20:00 local, quiet at night
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        await conn.execute("UPDATE residents SET timezone = 'Asia/Shanghai'")
        async with conn.cursor() as cur, cur.copy(
                "COPY device_events (ts, device_id, resident_id, kind, msg_id, data) FROM STDIN") as copy:
            for row in rows:
                await copy.write_row(row)
    async with AsyncConnectionPool(db_url, min_size=1, max_size=2, open=False) as pool:
        watch = HomeWatch(pool)
        watch.observe(Observation("M1", "motion", rows[-1][0], "last", data={"motion": True}), MOTION)
        assert await watch.refresh_profiles(timescaledb, now) == 1
    profile = watch._monitors["R1"].profile
    assert profile is not None and profile.history_days >= 9
    hours = {h.hour_of_week: h for h in profile.hours}
    tuesday = 24  # isodow 2
    assert hours[tuesday + 10].share_active == 1.0  # 10:00 local
    assert hours[tuesday + 3].share_active == 0.0  # 03:00 local


@pytest.mark.anyio
async def test_periodic_rounds_over_many_residents_yield_between_slices(db_url):
    t = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)
    n = 1200  # more than two slices

    def watch_with_residents(pool: AsyncConnectionPool) -> HomeWatch:
        watch = HomeWatch(pool)
        # The watch keeps each resident's clock offset from the hub's wall clock: observe at "now", so the
        # test does not depend on the hour it runs at (it failed once the real clock was past t + 7.5 h).
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(time, "time", t.timestamp)
            for i in range(n):
                binding = Binding(f"M{i}", "motion", f"R{i}", f"H{i}", "sz/futian/lianhua", "living_room")
                watch.observe(Observation(f"M{i}", "motion", t, f"m{i}", data={"motion": True}), binding)
        return watch

    async with AsyncConnectionPool(db_url, min_size=1, max_size=2, open=False) as pool:
        sliced, whole = watch_with_residents(pool), watch_with_residents(pool)
        turns = 0

        async def other_work() -> None:
            nonlocal turns
            while True:
                turns += 1
                await asyncio.sleep(0)

        other = asyncio.create_task(other_work())
        await asyncio.sleep(0)
        before = turns
        later = t + timedelta(hours=8)
        fired = await sliced.tick_all(later)
        during_tick = turns - before
        saved = await sliced.save()
        other.cancel()
        assert sorted((f.resident_id, f.type) for f in fired) == sorted(
            (f.resident_id, f.type) for f in whole.tick(later))
        assert sum(f.type == "inactivity" for f in fired) == n
        assert during_tick >= 2  # the loop ran other work between slices
        assert saved == n
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        row = await (await conn.execute("SELECT count(*) FROM detector_state WHERE detector = 'home'")).fetchone()
    assert row == (n,)


BEDROOM = Binding("M2", "motion", "R1", "HR1", "sz/futian/lianhua", "bedroom")


def _motion(binding: Binding, ts: datetime, msg: str) -> Observation:
    return Observation(binding.device_id, "motion", ts, msg, data={"motion": True})


async def _store_history(db_url: str, end: datetime, days: int, hours: range) -> None:
    """Stored living-room motion at the given UTC hours of each of ``days`` days before ``end``."""
    start = end - timedelta(days=days)
    stamps = [start + timedelta(hours=k, minutes=5) for k in range(days * 24)]
    rows = [(ts, "M1", "R1", "motion", f"h{k}", '{"motion": true}')
            for k, ts in enumerate(stamps) if ts.hour in hours and ts < end]
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        await conn.execute("UPDATE residents SET timezone = 'Asia/Shanghai'")
        async with conn.cursor() as cur, cur.copy(
                "COPY device_events (ts, device_id, resident_id, kind, msg_id, data) FROM STDIN") as copy:
            for row in rows:
                await copy.write_row(row)


def _observe_at(watch: HomeWatch, binding: Binding, ts: datetime, msg: str) -> None:
    # The watch keeps each resident's device clock against the hub's: observe "at" ts so the test does
    # not depend on when it runs.
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(time, "time", ts.timestamp)
        watch.observe(_motion(binding, ts, msg), binding)


@pytest.mark.anyio
async def test_sleeping_in_the_bedroom_at_night_raises_nothing_even_for_a_restless_sleeper(db_url, world):
    await world.resident("R1")
    # Four weeks of a restless sleeper: motion in every hour, night included. 14:00 UTC is 22:00 in Shanghai.
    evening = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)
    await _store_history(db_url, evening, 28, range(24))
    async with AsyncConnectionPool(db_url, min_size=1, max_size=2, open=False) as pool:
        watch = HomeWatch(pool)
        for i in range(10):
            _observe_at(watch, MOTION, evening + timedelta(minutes=5 * i), f"e{i}")
        await watch.configure_new()
        assert await watch.refresh_profiles(True, evening) == 1
        assert watch._monitors["R1"].silence.learned
        _observe_at(watch, BEDROOM, evening + timedelta(hours=2, minutes=10), "bed")  # 23:10 local
        fired = []
        night = evening + timedelta(hours=2, minutes=10)
        for minutes in range(1, 8 * 60, 1):  # to 07:10 local, a minute at a time
            fired += watch.tick(night + timedelta(minutes=minutes))
            if minutes == 4 * 60:  # a restart in the middle of the night changes nothing
                assert await watch.save() == 1
                watch = HomeWatch(pool)
                assert await watch.load() == 1
                await watch.refresh_profiles(True, evening)
    assert fired == []


@pytest.mark.anyio
async def test_a_week_old_baseline_is_no_more_eager_than_the_defaults(db_url, world):
    await world.resident("R1")
    noon = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
    await _store_history(db_url, noon, 10, range(24))  # a week and a half of activity in every hour

    async def delay(learn: bool) -> timedelta:
        async with AsyncConnectionPool(db_url, min_size=1, max_size=2, open=False) as pool:
            watch = HomeWatch(pool)
            for i in range(10):
                _observe_at(watch, MOTION, noon + timedelta(minutes=3 * i), f"n{i}")
            await watch.configure_new()
            if learn:
                assert await watch.refresh_profiles(True, noon) == 1
                profile = watch._monitors["R1"].profile
                assert profile is not None and 9 <= profile.history_days <= 10
                assert watch._monitors["R1"].silence.learned  # past the cold start: the baseline is used
            last = noon + timedelta(minutes=27)
            for minutes in range(1, 6 * 60):
                for trigger in watch.tick(last + timedelta(minutes=minutes)):
                    if trigger.type == "inactivity":
                        return trigger.ts - last
        raise AssertionError("no inactivity alert")

    default, learned = await delay(False), await delay(True)
    assert learned >= default

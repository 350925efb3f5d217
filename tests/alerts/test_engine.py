"""The escalation engine against a real PostgreSQL and loopback receivers, driven by a fake clock."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import psycopg
import pytest

from alerts.clock import FakeClock
from tests.alerts.conftest import (
    acknowledge,
    add_user,
    channels_doc,
    kinds,
    notified,
    raise_trigger,
    timeline,
)

pytestmark = pytest.mark.anyio


async def staff(world, db_url: str, community: str = "sz/futian/lianhua") -> dict[str, int]:
    """A community worker and a station duty officer for the community."""
    await world.region_tree()
    return {"worker": await add_user(db_url, "worker", "community_worker", community),
            "duty": await add_user(db_url, "duty", "operator", community)}


async def test_sos_climbs_the_default_ladder_to_120_dispatch(world, db_url, engines, hooks, clock):
    await world.resident("R1", contacts=2)
    people = await staff(world, db_url)
    engine = await engines.make(clock, channels_doc(hooks))
    alert_id = await raise_trigger(db_url, "R1", "sos", location={"lat": 22.5431, "lon": 114.0579, "acc_m": 15})

    assert await engine.tick() == 1
    assert sorted(b["recipient"]["id"] for b in hooks.on("/family")) == ["contact-R1-1", "contact-R1-2"]
    assert [b["recipient"]["id"] for b in hooks.on("/staff")] == [f"user-{people['worker']}"]
    assert hooks.on("/family")[0]["title"] == "紧急求助（SOS）告警：Test Resident"

    clock.advance(59)
    assert await engine.tick() == 0  # no acknowledgement yet, but the 60 s are not over
    clock.advance(2)
    assert await engine.tick() == 1
    assert {b["recipient"]["id"] for b in hooks.on("/staff")} == {
        f"user-{people['worker']}", f"user-{people['duty']}", "call-centre"}

    clock.advance(60)
    assert await engine.tick() == 0
    clock.advance(60)  # 3 minutes after creation
    assert await engine.tick() == 1
    [call] = hooks.on("/emergency")
    assert call["event"] == "emergency.dispatch" and call["service"] == "120"
    assert "Test Resident" in call["read_out_text"] and "1 Test Road" in call["read_out_text"]
    assert call["dispatch"]["location"]["kind"] == "live"
    assert call["dispatch"]["read_out_en"].startswith("[120 dispatch] SOS emergency call.")

    clock.advance(300)
    assert await engine.tick() == 1  # reminders until someone acknowledges
    entries = await timeline(db_url, alert_id)
    assert kinds(entries)[:2] == ["created", "policy"]
    assert [d["reason"] for k, d in entries if k == "escalated"] == ["no_acknowledgement"] * 2
    assert ("dispatch_record" in kinds(entries)) and ("reminder" in kinds(entries))
    assert (2, "emergency_120", "gateway") in notified(entries)
    steps = sorted({(s, k) for s, k, _ in notified(entries)})
    assert steps == [(0, "community_worker"), (0, "family"), (1, "call_centre"), (1, "duty_officer"),
                     (2, "emergency_120"), (3, "call_centre"), (3, "duty_officer"), (3, "family")]
    first = next(d for k, d in entries if k == "notification")
    assert {"channel", "recipient_kind", "recipient_id", "result", "latency_ms", "attempts", "detail"} <= set(first)


async def test_acknowledging_mid_ladder_stops_it(world, db_url, engines, hooks, clock):
    await world.resident("R1")
    await staff(world, db_url)
    engine = await engines.make(clock, channels_doc(hooks))
    alert_id = await raise_trigger(db_url, "R1", "sos")
    await engine.tick()
    sent = len(hooks.bodies)
    await acknowledge(db_url, alert_id)
    clock.advance(3600)
    assert await engine.tick() == 0
    assert len(hooks.bodies) == sent
    assert "escalated" not in kinds(await timeline(db_url, alert_id))


async def test_a_step_due_while_the_hub_was_down_fires_within_a_second_of_restart(
        world, db_url, engines, hooks, clock):
    await world.resident("R1")
    people = await staff(world, db_url)
    first = await engines.make(clock, channels_doc(hooks))
    alert_id = await raise_trigger(db_url, "R1", "sos")
    assert await first.tick() == 1
    await first.aclose()  # the hub stops

    clock.advance(90)  # the duty-officer step fell due while it was down
    second = await engines.make(clock, channels_doc(hooks))
    started = time.monotonic()
    task = asyncio.create_task(second.run(poll_s=5))
    try:
        while f"user-{people['duty']}" not in {b["recipient"]["id"] for b in hooks.on("/staff")}:
            assert time.monotonic() - started < 1.0, "the overdue step did not fire within a second"
            await asyncio.sleep(0.01)
        while "escalated" not in kinds(await timeline(db_url, alert_id)):  # recorded right after sending
            assert time.monotonic() - started < 2.0
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_running_engine_takes_every_alert_of_a_burst_on_wake_ups(world, db_url, engines, hooks, clock):
    residents = [f"R{i}" for i in range(6)]
    for rid in residents:
        await world.resident(rid, contacts=1)
    await staff(world, db_url)
    engine = await engines.make(clock, channels_doc(hooks), concurrency=2)
    task = asyncio.create_task(engine.run(poll_s=60))  # a poll would come far too late: only wake-ups count
    try:
        await asyncio.sleep(0.5)  # both workers found nothing and wait
        for rid in residents:  # more alerts than workers, committed while workers are busy with earlier ones
            await raise_trigger(db_url, rid, "sos")
        deadline = time.monotonic() + 15
        while len(hooks.on("/family")) < len(residents):
            assert time.monotonic() < deadline, f"only {len(hooks.on('/family'))} of 6 first steps ran"
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert sorted(b["recipient"]["id"] for b in hooks.on("/family")) == sorted(f"contact-{r}-1" for r in residents)


async def test_an_engine_woken_as_it_is_cancelled_still_stops(world, db_url, engines, hooks, clock):
    engine = await engines.make(clock, channels_doc(hooks), concurrency=2)
    task = asyncio.create_task(engine.run(poll_s=60))
    for _ in range(200):
        if len(engine._idle) == 2:  # both workers wait for work
            break
        await asyncio.sleep(0.02)
    engine.wake()  # a NOTIFY arrives...
    task.cancel()  # ...in the same loop turn as the shutdown
    done, _ = await asyncio.wait({task}, timeout=5)
    assert done, "a worker swallowed its cancellation: the engine (and the hub's shutdown) would never end"


async def test_two_engines_at_once_notify_each_recipient_once_per_step(world, db_url, engines, hooks, clock):
    residents = [f"R{i}" for i in range(6)]
    for rid in residents:
        await world.resident(rid, contacts=2)
    await staff(world, db_url)
    one = await engines.make(clock, channels_doc(hooks), concurrency=3)
    two = await engines.make(clock, channels_doc(hooks), concurrency=3)
    for rid in residents:
        await raise_trigger(db_url, rid, "sos")

    for advance in (0, 61, 120):
        clock.advance(advance)
        ran = await asyncio.gather(one.tick(), two.tick())
        assert sum(ran) == len(residents)
    family = hooks.per_recipient("/family")
    assert len(family) == 2 * len(residents) and set(family.values()) == {1}
    # Staff at step 0 (worker) and step 1 (worker is also told? no: duty officer and call centre) per alert.
    staff_bodies = hooks.on("/staff")
    per_alert_step = {(b["alert_id"], b["step"], b["recipient"]["id"]) for b in staff_bodies}
    assert len(per_alert_step) == len(staff_bodies) == 3 * len(residents)
    calls = hooks.on("/emergency")
    assert sorted(b["alert_id"] for b in calls) == sorted({b["alert_id"] for b in calls})
    assert len(calls) == len(residents)


async def test_a_failing_channel_falls_back_to_the_next_and_is_recorded(world, db_url, engines, hooks, clock):
    await world.resident("R1")
    await staff(world, db_url)
    hooks.down.add("/family")
    engine = await engines.make(clock, channels_doc(hooks))
    alert_id = await raise_trigger(db_url, "R1", "sos")
    assert await engine.tick() == 1
    entries = await timeline(db_url, alert_id)
    assert notified(entries, ok=False) == [(0, "family", "family-app")]
    failure = next(d for k, d in entries if k == "notification" and d["result"] == "failed")
    assert failure["detail"] == "http 503" and failure["attempts"] == 1
    assert (0, "family", "family-backup") in notified(entries)
    assert "escalated" not in kinds(entries)


async def test_when_every_channel_fails_the_next_step_runs_at_once(world, db_url, engines, hooks, clock):
    await world.resident("R1")
    people = await staff(world, db_url)
    hooks.down.update({"/family", "/family-backup"})
    engine = await engines.make(clock, channels_doc(hooks))
    alert_id = await raise_trigger(db_url, "R1", "sos")
    assert await engine.tick() == 2  # step 0, then step 1 without waiting the 60 s
    entries = await timeline(db_url, alert_id)
    failed = next(d for k, d in entries if k == "step_failed")
    assert failed["unreached_kinds"] == ["family"] and failed["reason"] == "delivery_failed"
    assert next(d for k, d in entries if k == "escalated")["reason"] == "delivery_failed"
    assert f"user-{people['duty']}" in {b["recipient"]["id"] for b in hooks.on("/staff")}


async def test_resident_without_contacts_gets_worker_and_operators_and_is_flagged(
        world, db_url, engines, hooks, clock):
    await world.resident("R1", contacts=0)
    people = await staff(world, db_url)
    platform = await add_user(db_url, "platform-op", "operator", None)
    await add_user(db_url, "other-op", "operator", "sz/nanshan/shekou")  # cannot see R1: not told
    engine = await engines.make(clock, channels_doc(hooks))
    alert_id = await raise_trigger(db_url, "R1", "sos")
    await engine.tick()
    entries = await timeline(db_url, alert_id)
    assert kinds(entries).count("no_contacts") == 1
    told = {(b["recipient"]["kind"], b["recipient"]["id"]) for b in hooks.on("/staff")}
    assert told == {("community_worker", f"user-{people['worker']}"), ("operator", f"user-{people['duty']}"),
                    ("operator", f"user-{platform}")}
    assert hooks.on("/family") == []
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        feed = await (await conn.execute(
            "SELECT payload->>'change' FROM feed_events WHERE payload->>'alert_id' = %s", (str(alert_id),)
        )).fetchall()
    assert ("no_contacts",) in feed
    clock.advance(61)
    await engine.tick()
    assert kinds(await timeline(db_url, alert_id)).count("no_contacts") == 1  # flagged once


async def _fall(world, db_url: str) -> int:
    await world.resident("R1")
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        await conn.execute("INSERT INTO devices (id, type, resident_id, household_id) VALUES"
                           " ('WB1', 'wristband', 'R1', 'HR1'), ('RD1', 'radar', NULL, 'HR1')")
    return await raise_trigger(db_url, "R1", "fall", details={"source": "radar", "state": "fall"}, device="RD1")


async def test_a_checkin_within_the_fall_window_cancels_the_alert(world, db_url, engines, hooks, clock):
    await staff(world, db_url)
    engine = await engines.make(clock, channels_doc(hooks))
    alert_id = await _fall(world, db_url)
    assert await engine.tick() == 1
    assert hooks.bodies == []  # nobody is told during the cancel window
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        await conn.execute("INSERT INTO device_events (ts, device_id, resident_id, kind, msg_id)"
                           " VALUES (%s, 'WB1', 'R1', 'checkin', 'ok-1')", (datetime.now(UTC),))
    clock.advance(29)
    assert await engine.tick() == 0
    clock.advance(2)
    assert await engine.tick() == 1
    assert hooks.bodies == []
    entries = await timeline(db_url, alert_id)
    assert kinds(entries) == ["created", "cancel_window_started", "cancelled_by_resident", "resolved"]
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        row = await (await conn.execute(
            "SELECT closed_at IS NOT NULL, resolution, (SELECT count(*) FROM alert_timers) FROM alerts"
            " WHERE id = %s", (alert_id,))).fetchone()
    assert row == (True, "resident_fine", 0)


async def test_no_checkin_in_the_fall_window_escalates(world, db_url, engines, hooks, clock):
    await staff(world, db_url)
    engine = await engines.make(clock, channels_doc(hooks))
    alert_id = await _fall(world, db_url)
    await engine.tick()
    clock.advance(31)
    assert await engine.tick() == 1
    assert len(hooks.on("/family")) == 1 and len(hooks.on("/staff")) == 1
    entries = await timeline(db_url, alert_id)
    assert kinds(entries)[:4] == ["created", "cancel_window_started", "cancel_window_expired", "policy"]
    clock.advance(59)  # the ladder's 60 s count from the end of the window
    assert await engine.tick() == 0
    clock.advance(2)
    assert await engine.tick() == 1


async def test_quiet_hours_delay_low_severity_never_critical(world, db_url, engines, hooks):
    await world.resident("R1")
    await staff(world, db_url)
    night = FakeClock(datetime(2030, 1, 1, 15, 30, tzinfo=UTC))  # 23:30 in Shanghai
    engine = await engines.make(night, channels_doc(hooks), quiet_hours="22:00-07:00")
    low = await raise_trigger(db_url, "R1", "low_battery")
    sos = await raise_trigger(db_url, "R1", "sos")
    await engine.tick()
    assert {b["alert_id"] for _, b in hooks.bodies} == {sos}
    delayed = next(d for k, d in await timeline(db_url, low) if k == "delayed_quiet_hours")
    assert delayed["until"] == "2030-01-02T07:00:00+08:00"
    night.advance(7.5 * 3600)
    await engine.tick()
    assert [b["recipient"]["kind"] for _, b in hooks.bodies if b["alert_id"] == low] == ["community_worker"]


async def test_confirmed_emergency_dispatches_at_once_even_after_acknowledgement(
        world, db_url, engines, hooks, clock):
    await world.resident("R1", flags=("dementia",))
    await staff(world, db_url)
    engine = await engines.make(clock, channels_doc(hooks))
    alert_id = await raise_trigger(db_url, "R1", "wandering", location={"lat": 22.6, "lon": 114.1, "acc_m": 30})
    await engine.tick()
    await acknowledge(db_url, alert_id)
    assert engine.emergency_kind("wandering", "high", ["dementia"]) == "emergency_110"
    async with await psycopg.AsyncConnection.connect(db_url) as conn:  # what confirm-emergency does
        await conn.execute("INSERT INTO alert_timers (alert_id, step, due_at, jump)"
                           " VALUES (%s, 0, now(), 'emergency_110')", (alert_id,))
    assert await engine.tick() == 1
    [call] = hooks.on("/emergency")
    assert call["service"] == "110" and call["dispatch"]["cause"] == "confirmed"
    entries = await timeline(db_url, alert_id)
    assert next(d for k, d in entries if k == "escalated")["reason"] == "emergency_confirmed"
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        left = await (await conn.execute("SELECT count(*) FROM alert_timers")).fetchone()
        delivered = await (await conn.execute("SELECT delivered FROM alert_dispatches")).fetchall()
    assert left == (0,) and delivered == [(True,)]


async def test_a_step_another_worker_holds_does_not_make_idle_workers_poll(world, db_url, engines, hooks, clock):
    await world.resident("R1", contacts=1)
    await staff(world, db_url)
    engine = await engines.make(clock, channels_doc(hooks))
    await raise_trigger(db_url, "R1", "sos")
    job = await engine._claim()  # one worker holds the step (its lease runs) while it sends
    assert job is not None
    assert await engine._next_wait(5.0) == 5.0, "idle workers would poll every 10 ms until the step is sent"
    await engine._release(job)
    assert await engine._next_wait(5.0) < 1.0  # handed back: due now (by the fake clock, within its skew)


async def test_only_due_steps_wake_the_engine_not_the_live_feed(world, db_url, engines, hooks, clock):
    await world.resident("R1", contacts=1)
    await staff(world, db_url)
    engine = await engines.make(clock, channels_doc(hooks), concurrency=2)
    task = asyncio.create_task(engine.run(poll_s=60))
    try:
        for _ in range(200):
            if len(engine._idle) == 2:
                break
            await asyncio.sleep(0.02)
        woken = engine._wakes
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
            for _ in range(5):  # timeline and console traffic
                await conn.execute("SELECT pg_notify('eldercare_feed', 'sz')")
        await asyncio.sleep(0.5)
        assert engine._wakes == woken
        await raise_trigger(db_url, "R1", "sos")
        deadline = time.monotonic() + 10
        while not hooks.on("/family"):
            assert time.monotonic() < deadline, "a new alert did not wake the engine (poll is 60 s)"
            await asyncio.sleep(0.02)
        assert engine._wakes > woken
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

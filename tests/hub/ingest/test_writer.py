"""The writer: one pipelined transaction per batch, idempotent events, alerts once, survives a dropped connection."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
import pytest

from alerts.model import Binding, Trigger
from devices.observation import ImuBatch, Location, Observation
from hub.health import Health
from hub.ingest.writer import Writer
from hub.storage.migrations import migrate
from hub.storage.pool import make_pool

pytestmark = pytest.mark.anyio


@pytest.fixture
async def writer(settings, world):
    migrate(settings.db_url)
    pool = make_pool(settings.db_url, 4)
    await pool.open(wait=True)
    w = Writer(pool, Health(), batch_max=1000, flush_ms=10)
    try:
        yield w
    finally:
        await w._release(w._main)
        await w._release(w._urgent)
        await pool.close()


async def _binding(world, device_id: str, device_type: str, room: str | None = None) -> Binding:
    async with await psycopg.AsyncConnection.connect(world.db_url) as conn:
        known = await (await conn.execute("SELECT 1 FROM residents WHERE id = 'R1'")).fetchone()
    rid = "R1" if known else await world.resident("R1")
    await world.device(device_id, device_type, rid, room=room)
    async with await psycopg.AsyncConnection.connect(world.db_url) as conn:
        hid, region = await (await conn.execute(
            "SELECT r.household_id, h.region_path FROM residents r JOIN households h ON h.id = r.household_id"
            " WHERE r.id = %s", (rid,))).fetchone()
    return Binding(device_id, device_type, rid, hid, region, room)


async def _flush(writer: Writer, lane):
    """Write one lane's pending batch directly, as its run loop would, and start a new one."""
    batch, lane.batch = lane.batch, type(lane.batch)()
    return await writer._write(lane, batch)


def _sos(binding: Binding, ts: datetime) -> tuple[Observation, list[Trigger]]:
    obs = Observation(binding.device_id, "sos", ts, "press-1", critical=True, data={"alarms": []},
                      location=Location(22.5, 114.0, 10.0))
    assert binding.resident_id and binding.household_id and binding.region_path
    trigger = Trigger(type="sos", severity="critical", ts=ts, resident_id=binding.resident_id,
                      household_id=binding.household_id, region_path=binding.region_path,
                      source_device=binding.device_id, details={})
    return obs, [trigger]


async def test_a_batch_stores_every_kind_of_row(writer, world, settings):
    wb = await _binding(world, "WB1", "wristband")
    motion = await _binding(world, "MO1", "motion", room="living_room")
    now = datetime.now(UTC).replace(microsecond=0)
    samples = np.array([[0.0, 0.0, 1.0], [0.5, -0.25, 1.5]], dtype=np.float32)
    acks: list[str] = []
    writer.add(Observation("WB1", "heartbeat", now, "h1", readings=(("battery", 81.0), ("signal", -67.0)),
                           status={"battery": 81.0, "worn": True}), wb, [], lambda: acks.append("h1"), now)
    writer.add(Observation("WB1", "imu", now, "i1", data={"rate_hz": 25.0, "n": 2}, imu=ImuBatch(25.0, samples)),
               wb, [], None, now)
    writer.add(Observation("MO1", "motion", now, "m1", data={"motion": True, "note": "a \"quoted\" {x}"},
                           readings=(("battery", 80.0),)), motion, [], lambda: acks.append("m1"), now)
    writer.dead_letter("t/x", None, "malformed_json", "bad", b"{not json", None)
    committed = await _flush(writer, writer._main)
    assert (committed.messages, committed.duplicates) == (4, 0)
    async with await psycopg.AsyncConnection.connect(settings.db_url) as conn:
        readings = await (await conn.execute(
            "SELECT device_id, resident_id, metric, value FROM readings ORDER BY 1, 3")).fetchall()
        imu = await (await conn.execute("SELECT rate_hz, n, samples FROM imu_batches")).fetchall()
        events = await (await conn.execute("SELECT kind, room, data, received_at FROM device_events")).fetchall()
        status = await (await conn.execute(
            "SELECT device_id, battery, worn, online FROM device_status ORDER BY 1")).fetchall()
        dead = await (await conn.execute("SELECT reason, payload, device_id FROM dead_letters")).fetchall()
    assert readings == [("MO1", "R1", "battery", 80.0), ("WB1", "R1", "battery", 81.0),
                        ("WB1", "R1", "signal", -67.0)]
    assert imu[0][:2] == (25.0, 2)
    assert np.array_equal(np.frombuffer(imu[0][2], dtype="<f4").reshape(-1, 3), samples)
    assert events == [("motion", "living_room", {"motion": True, "note": 'a "quoted" {x}'}, now)]
    assert status == [("MO1", None, None, True), ("WB1", 81.0, True, True)]
    assert dead == [("malformed_json", b"{not json", None)]
    assert acks == []  # acknowledging is run()'s job, after the commit


async def test_a_redelivered_sos_is_stored_and_alerted_once(writer, world, settings):
    wb = await _binding(world, "WB1", "wristband")
    ts = datetime.now(UTC) - timedelta(seconds=5)
    for _ in range(2):  # a second delivery in a later batch
        obs, triggers = _sos(wb, ts)
        writer.add(obs, wb, triggers, None, ts)
        committed = await _flush(writer, writer._urgent)  # an SOS takes the urgent lane
    assert committed.duplicates == 1 and committed.alerts == []
    obs, triggers = _sos(wb, ts)
    writer.add(obs, wb, triggers, None, ts)
    writer.add(obs, wb, triggers, None, ts)  # and twice inside one batch
    assert not writer._main.batch.messages
    committed = await _flush(writer, writer._urgent)
    assert committed.alerts == []
    async with await psycopg.AsyncConnection.connect(settings.db_url) as conn:
        events = await (await conn.execute("SELECT count(*) FROM device_events WHERE kind = 'sos'")).fetchone()
        alerts = await (await conn.execute("SELECT count(*), max(trigger_count) FROM alerts")).fetchone()
    assert events == (1,)
    assert alerts == (1, 1)


async def test_the_writer_gets_a_new_connection_when_its_own_was_dropped(writer, world, settings):
    wb = await _binding(world, "WB1", "wristband")
    now = datetime.now(UTC)
    writer.add(Observation("WB1", "heartbeat", now, "h1", readings=(("battery", 81.0),)), wb, [], None, now)
    await _flush(writer, writer._main)
    assert writer._main.conn is not None
    pid = writer._main.conn.info.backend_pid
    async with await psycopg.AsyncConnection.connect(settings.db_url, autocommit=True) as conn:
        await conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    acked: list[bool] = []
    writer.add(Observation("WB1", "heartbeat", now + timedelta(seconds=1), "h2", readings=(("battery", 80.0),)),
               wb, [], lambda: acked.append(True), now)
    task = asyncio.create_task(writer.run())
    try:
        await writer.drain(timeout=15)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert acked == [True]
    async with await psycopg.AsyncConnection.connect(settings.db_url) as conn:
        rows = await (await conn.execute("SELECT count(*) FROM readings")).fetchone()
    assert rows == (2,)


async def test_an_sos_commits_while_the_telemetry_batch_is_stuck(writer, world, settings):
    motion = await _binding(world, "MO1", "motion")
    wb = await _binding(world, "WB1", "wristband")
    now = datetime.now(UTC)
    writer.add(Observation("MO1", "heartbeat", now, "h0", readings=(("battery", 80.0),)), motion, [], None, now)
    await _flush(writer, writer._main)  # MO1 has a status row now
    acked: list[str] = []
    task = asyncio.create_task(writer.run())
    try:
        async with await psycopg.AsyncConnection.connect(settings.db_url) as blocker:
            # Another transaction holds MO1's status row: the main lane's next batch waits on it.
            await blocker.execute("SELECT 1 FROM device_status WHERE device_id = 'MO1' FOR UPDATE")
            writer.add(Observation("MO1", "heartbeat", now + timedelta(seconds=1), "h1", critical=True,
                                   readings=(("battery", 79.0),)), motion, [], lambda: acked.append("h1"), now)
            obs, triggers = _sos(wb, now)
            writer.add(obs, wb, triggers, lambda: acked.append("sos"), now, urgent=True)
            await asyncio.wait_for(writer._urgent.idle.wait(), 10)
            assert acked == ["sos"]  # committed and acknowledged while the telemetry batch still waits
            assert not writer._main.idle.is_set()
            async with await psycopg.AsyncConnection.connect(settings.db_url) as conn:
                alerts = await (await conn.execute("SELECT type FROM alerts")).fetchall()
            assert alerts == [("sos",)]
            await blocker.rollback()
        await writer.drain(timeout=10)
        assert acked == ["sos", "h1"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_both_lanes_update_one_device_status_without_losing_either(writer, world, settings):
    wb = await _binding(world, "WB1", "wristband")
    now = datetime.now(UTC).replace(microsecond=0)
    task = asyncio.create_task(writer.run())
    try:
        for i in range(20):  # many interleaved batches of both lanes over the same status row
            ts = now + timedelta(seconds=i)
            writer.add(Observation("WB1", "heartbeat", ts, f"h{i}", readings=(("battery", 90.0 - i),),
                                   status={"battery": 90.0 - i}), wb, [], None, ts)
            obs, triggers = _sos(wb, ts)
            obs = Observation(obs.device_id, obs.kind, ts, f"sos{i}", critical=True, data=obs.data,
                              location=obs.location)
            writer.add(obs, wb, triggers, None, ts, urgent=True)
            await asyncio.sleep(0)
        await writer.drain(timeout=20)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    async with await psycopg.AsyncConnection.connect(settings.db_url) as conn:
        status = await (await conn.execute("SELECT last_seen, battery FROM device_status")).fetchall()
        counts = await (await conn.execute(
            "SELECT (SELECT count(*) FROM device_events WHERE kind = 'sos'),"
            " (SELECT count(*) FROM readings WHERE metric = 'battery')")).fetchone()
        alerts = await (await conn.execute("SELECT count(*), max(trigger_count) FROM alerts")).fetchone()
    assert status == [(now + timedelta(seconds=19), 71.0)]
    assert counts == (20, 20)
    assert alerts == (1, 20)  # one open SOS alert, refreshed by every press

"""Two workers behind a shared subscription: every SOS stored and alerted once, detection at the owner only."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest

from hub.ingest.partition import Partition
from simulators.native import message

pytestmark = pytest.mark.anyio


async def test_sos_from_many_devices_each_alerted_once(two_workers, world, devices, settings):
    residents = [f"R{i}" for i in range(12)]
    clients = []
    for rid in residents:
        await world.resident(rid)
        clients.append(await devices.connect(f"W{rid}", await world.device(f"W{rid}", "wristband", rid)))
    try:
        presses = {rid: message({"location": None}, msg_id=f"press-{rid}", ts=time.time() - 1) for rid in residents}
        for _ in range(2):  # every press sent twice, byte for byte: what a redelivery looks like
            for rid, client in zip(residents, clients, strict=True):
                await client.publish(world.topic("wristband", f"W{rid}", "sos"), presses[rid], qos=1)
    finally:
        for client in clients:
            await client.__aexit__(None, None, None)
    deadline = time.monotonic() + 8
    async with await psycopg.AsyncConnection.connect(settings.db_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            rows = await (await conn.execute(
                "SELECT resident_id, trigger_count FROM alerts WHERE type='sos'")).fetchall()
            if len(rows) == len(residents):
                break
            await asyncio.sleep(0.05)
        events = await (await conn.execute("SELECT count(*) FROM device_events WHERE kind='sos'")).fetchone()
    assert sorted(r for r, _ in rows) == sorted(residents)
    assert all(count == 1 for _, count in rows)
    assert events == (len(residents),)
    received = [h.health.counters.get("messages_in", 0) for h in two_workers]
    assert all(n > 0 for n in received), f"the shared subscription did not spread the load: {received}"


async def test_stateful_detection_runs_only_at_the_owner(two_workers, world, devices):
    # Pick a resident owned by worker 1, so whatever worker 0 receives must be forwarded.
    rid = next(f"R{i}" for i in range(100) if Partition(2, 1).owns_resident(f"R{i}"))
    await world.resident(rid)
    client = await devices.connect(f"M{rid}", await world.device(f"M{rid}", "motion", rid, room="living_room"))
    try:
        for i in range(10):
            await client.publish(world.topic("motion", f"M{rid}", "state"),
                                 message({"motion": i % 2 == 0}, ts=time.time() - 10 + i), qos=1)
    finally:
        await client.__aexit__(None, None, None)
    owner, other = two_workers[1], two_workers[0]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and other.health.counters.get("forwarded_for_detection", 0) == 0:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    assert other.health.counters.get("forwarded_for_detection", 0) > 0
    assert owner.health.counters.get("detected_for_other_worker", 0) == other.health.counters[
        "forwarded_for_detection"]
    assert len(owner.home) == 1 and len(other.home) == 0

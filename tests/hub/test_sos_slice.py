"""The vertical slice: a wristband's heartbeat and SOS over MQTT become rows and one critical alert."""

from __future__ import annotations

import asyncio
import time

import httpx
import psycopg
import pytest

from simulators.native import message

pytestmark = pytest.mark.anyio


async def test_sos_is_stored_and_listed_within_one_second(running_hub, world, devices, login, settings):
    rid = await world.resident("R1")
    password = await world.device("WB1", "wristband", rid)
    await world.user("op", "operator")
    base = f"http://127.0.0.1:{settings.api_port}"
    headers = await login(base, "op", "op-pw")
    client = await devices.connect("WB1", password)
    try:
        await client.publish(world.topic("wristband", "WB1", "heartbeat"),
                             message({"battery": 81, "signal": -67, "worn": True}), qos=1)
        sent = time.monotonic()
        await client.publish(world.topic("wristband", "WB1", "sos"),
                             message({"location": {"lat": 22.55, "lon": 114.05, "acc_m": 12}}), qos=1)
    finally:
        await client.__aexit__(None, None, None)

    seen_after = None
    async with httpx.AsyncClient(base_url=base, headers=headers) as http:
        while time.monotonic() - sent < 3:
            items = (await http.get("/api/alerts")).json()["items"]
            if items:
                seen_after = time.monotonic() - sent
                break
    assert seen_after is not None, "no alert within 3 s"
    assert seen_after < 1.0, f"alert listed after {seen_after:.3f} s"
    assert len(items) == 1
    alert = items[0]
    assert (alert["type"], alert["severity"], alert["resident_id"]) == ("sos", "critical", "R1")
    assert alert["location"]["lat"] == 22.55

    # The SOS overtakes the earlier heartbeat (its own lane); wait for the heartbeat's batch too.
    async with await psycopg.AsyncConnection.connect(settings.db_url, autocommit=True) as conn:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not await (await conn.execute(  # noqa: ASYNC110 - polling the DB
                "SELECT 1 FROM readings WHERE device_id = 'WB1'")).fetchone():
            await asyncio.sleep(0.02)
        kinds = await (await conn.execute(
            "SELECT kind FROM device_events WHERE device_id = 'WB1' ORDER BY ts")).fetchall()
        battery = await (await conn.execute(
            "SELECT value FROM readings WHERE device_id = 'WB1' AND metric = 'battery'")).fetchall()
        status = await (await conn.execute(
            "SELECT battery, worn, online FROM device_status WHERE device_id = 'WB1'")).fetchone()
        hypertables = await (await conn.execute(
            "SELECT hypertable_name FROM timescaledb_information.hypertables ORDER BY 1")).fetchall()
    assert [k for (k,) in kinds] == ["sos"]
    assert battery == [(81.0,)]
    assert status == (81.0, True, True)
    assert {"device_events", "readings"} <= {h for (h,) in hypertables}


async def test_redelivered_sos_creates_no_second_alert(running_hub, world, devices, settings):
    rid = await world.resident("R2")
    password = await world.device("WB2", "wristband", rid)
    client = await devices.connect("WB2", password)
    payload = message({"location": None}, msg_id="press-1")
    try:
        for _ in range(3):  # the device retries the same press
            await client.publish(world.topic("wristband", "WB2", "sos"), payload, qos=1)
    finally:
        await client.__aexit__(None, None, None)
    deadline = time.monotonic() + 5
    async with await psycopg.AsyncConnection.connect(settings.db_url) as conn:
        while time.monotonic() < deadline:
            row = await (await conn.execute(
                "SELECT count(*) FROM device_events WHERE device_id = 'WB2'")).fetchone()
            await conn.commit()
            if row and row[0] >= 1 and running_hub.health.counters.get("messages_committed", 0) >= 3:
                break
        alerts = await (await conn.execute("SELECT type, trigger_count FROM alerts")).fetchall()
        events = await (await conn.execute("SELECT count(*) FROM device_events")).fetchone()
    assert alerts == [("sos", 1)]
    assert events == (1,)
    assert running_hub.health.counters.get("duplicates_ignored", 0) == 2

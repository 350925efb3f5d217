"""Issue 17, findings 2 and 8 replayed end to end: TCP → gateway → real broker → hub → real database."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiomqtt
import psycopg
import pytest

from devices.watch3g import build_al, build_lk, build_ud, encode_status
from devices.watch3g.bridge import serve
from devices.watch3g.guard import DbRoster
from hub.embedded import free_port
from simulators.native import message

pytestmark = pytest.mark.anyio
WATCH, STRANGER = "8650280004321", "8650289999999"
SHENZHEN, BEIJING = (22.5431, 114.0579), (39.9042, 116.4074)


@pytest.fixture
async def gateway(running_hub, services, settings) -> AsyncIterator[int]:
    """The watch gateway as `make run` starts it (provisioned IMEIs only), on a free port."""
    services.store.set_password("gw-watch3g", "gw-secret")
    port = free_port()
    roster = DbRoster(settings.db_url)
    task = asyncio.create_task(serve("127.0.0.1", port, "127.0.0.1", services.broker.device_port, "gw-watch3g",
                                     "gw-secret", root=settings.mqtt_topic_root, is_provisioned=roster))
    for _ in range(100):
        with contextlib.suppress(OSError):
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # the bridge's MQTT connection
    try:
        yield port
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await roster.close()


async def _send(port: int, *frames: bytes, reply: bool = True) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for frame in frames:
            writer.write(frame)
        await writer.drain()
        if not reply:
            return b""
        return await asyncio.wait_for(reader.readuntil(b"]"), 5)
    finally:
        writer.close()


async def _rows(settings, query: str, until, within: float = 5.0) -> list[tuple]:
    deadline = time.monotonic() + within
    async with await psycopg.AsyncConnection.connect(settings.db_url, autocommit=True) as conn:
        while True:
            rows = await (await conn.execute(query)).fetchall()
            if until(rows) or time.monotonic() > deadline:
                return rows
            await asyncio.sleep(0.05)


async def test_a_spoofed_sos_is_raised_unverified_and_moves_nothing(gateway, world, devices, settings):
    """The attack: a real watch in Shenzhen; a second connection speaks as it from 'Beijing'."""
    rid = await world.resident("R1")
    await world.device(WATCH, "watch3g", rid)
    now = datetime.now(UTC).replace(microsecond=0)
    real_r, real_w = await asyncio.open_connection("127.0.0.1", gateway)
    real_w.write(build_ud(WATCH, now, *SHENZHEN, True, 80) + build_lk(WATCH, battery=80))
    await real_w.drain()
    await asyncio.wait_for(real_r.readuntil(b"]"), 5)
    await _rows(settings, f"SELECT last_location FROM device_status WHERE device_id = '{WATCH}'",
                lambda rows: rows and rows[0][0])
    ack = await _send(gateway, build_ud(WATCH, now, *BEIJING, True, 80),
                      build_al(WATCH, now, *BEIJING, True, 80, encode_status(["sos"])))
    real_w.close()
    assert ack.endswith(b"*AL]")

    alerts = await _rows(settings, "SELECT location, details FROM alerts WHERE type = 'sos'", bool)
    assert len(alerts) == 1  # never suppressed...
    location, details = alerts[0]
    assert details["verified"] is False  # ...but marked for operators to judge
    assert details["suspect"] == ["impossible_speed", "second_connection"]
    assert details["claimed_location"]["lat"] == pytest.approx(BEIJING[0])
    assert location is None
    status = await _rows(settings, f"SELECT last_location, tamper FROM device_status WHERE device_id = '{WATCH}'",
                         lambda rows: rows and rows[0][1])
    assert status[0][0]["lat"] == pytest.approx(SHENZHEN[0])  # the watch was not moved
    assert status[0][1] is True  # the second connection is visible: fleet health shows tamper
    tamper = await _rows(settings, "SELECT count(*) FROM alerts WHERE type = 'tamper'", lambda rows: rows[0][0])
    assert tamper[0][0] == 1


async def test_a_suspect_sos_never_overwrites_an_open_alerts_location(gateway, world, devices, settings):
    """The resident's SOS from a wristband is open at home; a spoofed watch SOS must not move it."""
    rid = await world.resident("R1")
    secret = await world.device("WB-HOME", "wristband", rid)
    await world.device(WATCH, "watch3g", rid)
    client = await devices.connect("WB-HOME", secret)
    try:
        await client.publish(world.topic("wristband", "WB-HOME", "sos"),
                             message({"location": {"lat": SHENZHEN[0], "lon": SHENZHEN[1], "acc_m": 5}}), qos=1)
    finally:
        await client.__aexit__(None, None, None)
    await _rows(settings, "SELECT id FROM alerts WHERE type = 'sos'", bool)
    now = datetime.now(UTC).replace(microsecond=0)
    real_r, real_w = await asyncio.open_connection("127.0.0.1", gateway)
    real_w.write(build_lk(WATCH, battery=80))
    await real_w.drain()
    await asyncio.wait_for(real_r.readuntil(b"]"), 5)
    await _send(gateway, build_al(WATCH, now, *BEIJING, True, 80, encode_status(["sos"])))
    real_w.close()
    await _rows(settings, "SELECT 1 FROM device_events WHERE kind = 'sos' AND device_id = '" + WATCH + "'", bool)
    await asyncio.sleep(0.3)
    alerts = await _rows(settings, "SELECT location FROM alerts WHERE type = 'sos'", bool)
    assert len(alerts) == 1
    assert alerts[0][0]["lat"] == pytest.approx(SHENZHEN[0])


async def test_unknown_imeis_leave_no_rows_and_no_retained_messages(gateway, world, services, settings):
    """Finding 8: 1,000 fake IMEIs left retained messages; 10,000 frames became 10,002 dead letters."""
    await world.resident("R1")
    for i in range(50):
        await _send(gateway, *(build_lk(f"86502899{i:05d}", battery=50) for _ in range(20)), reply=False)
    await _send(gateway, *(build_al(STRANGER, datetime.now(UTC), *BEIJING, True, 80, encode_status(["sos"]))
                           for _ in range(200)), reply=False)
    await asyncio.sleep(1.0)
    dead = await _rows(settings, "SELECT count(*) FROM dead_letters", lambda rows: False, within=0)
    assert dead[0][0] == 0
    async with aiomqtt.Client("127.0.0.1", services.broker.port, username="hub", password=services.hub_password,
                              identifier=f"probe-{uuid.uuid4().hex[:6]}") as probe:
        await probe.subscribe(f"{settings.mqtt_topic_root}/watch3g/#", qos=1)
        got: list[str] = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                async for msg in probe.messages:
                    got.append(str(msg.topic))
    assert got == []


async def test_after_a_gateway_restart_the_hubs_last_fix_is_still_the_trusted_one(running_hub, world, services,
                                                                                   settings):
    """A restarted gateway holds no fix in memory: the hub's stored one seeds the impossible-speed check."""
    rid = await world.resident("R1")
    await world.device(WATCH, "watch3g", rid)
    services.store.set_password("gw-watch3g", "gw-secret")
    now = datetime.now(UTC).replace(microsecond=0)
    for frames in ([build_ud(WATCH, now, *SHENZHEN, True, 80), build_lk(WATCH, battery=80)],   # the real watch
                   [build_ud(WATCH, now, *BEIJING, True, 80), build_lk(WATCH, battery=80)]):  # after a restart
        port = free_port()
        roster = DbRoster(settings.db_url)
        task = asyncio.create_task(serve("127.0.0.1", port, "127.0.0.1", services.broker.device_port, "gw-watch3g",
                                         "gw-secret", root=settings.mqtt_topic_root, is_provisioned=roster,
                                         last_fix=roster.last_fix))
        try:
            for _ in range(100):
                with contextlib.suppress(OSError):
                    _, w = await asyncio.open_connection("127.0.0.1", port)
                    w.close()
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            assert (await _send(port, *frames)).endswith(b"*LK]")
            await _rows(settings, f"SELECT last_location FROM device_status WHERE device_id = '{WATCH}'",
                        lambda rows: rows and rows[0][0])
            await asyncio.sleep(0.5)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await roster.close()
    status = await _rows(settings, f"SELECT last_location FROM device_status WHERE device_id = '{WATCH}'", bool)
    assert status[0][0]["lat"] == pytest.approx(SHENZHEN[0])
    events = await _rows(settings, f"SELECT count(*) FROM device_events WHERE device_id = '{WATCH}'"
                                   " AND kind = 'location'", lambda rows: rows[0][0] >= 2)
    assert events[0][0] == 2  # the flagged fix is kept as an event, just not believed

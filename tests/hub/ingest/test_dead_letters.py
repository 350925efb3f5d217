"""Bad input is dead-lettered with its reason, never crashes ingestion, and never delays a good SOS."""

from __future__ import annotations

import json
import time

import psycopg
import pytest

from simulators.native import message

pytestmark = pytest.mark.anyio


async def test_every_kind_of_bad_message_is_dead_lettered_and_sos_still_arrives(running_hub, world, devices,
                                                                                 settings):
    rid = await world.resident("R1")
    wb = await world.device("WB1", "wristband", rid)
    door = await world.device("DO1", "door", rid, room="entrance")
    bad: list[tuple[str, bytes, str]] = [
        (world.topic("wristband", "WB1", "heartbeat"), b"{not json", "malformed_json"),
        (world.topic("wristband", "WB1", "heartbeat"), message({"battery": "full"}), "wrong_type"),
        (world.topic("wristband", "WB1", "heartbeat"), b'{"v":1,"id":"n","battery":NaN}', "not_finite"),
        (world.topic("wristband", "WB1", "heartbeat"), message({"battery": 50}, ts=time.time() + 86400),
         "future_timestamp"),
        (world.topic("wristband", "WB1", "heartbeat"), message({"pad": "x" * 70000}), "too_large"),
        (world.topic("wristband", "WB1", "heartbeat"), json.dumps({"v": 2, "id": "x"}).encode(), "bad_version"),
        (world.topic("wristband", "WB1", "heartbeat"), message({"device": "WB9"}), "device_mismatch"),
        (world.topic("wristband", "WB1", "imu"), message({"rate_hz": 50, "x": [1.0], "y": [], "z": [1.0]}),
         "shape_mismatch"),
    ]
    client = await devices.connect("WB1", wb)
    dclient = await devices.connect("DO1", door)
    try:
        for topic, payload, _ in bad:
            await client.publish(topic, payload, qos=1)
        # A door sensor speaking on a wristband topic: the topic and the registry disagree.
        await dclient.publish(world.topic("wristband", "DO1", "sos"), message({}), qos=1)
        sent = time.monotonic()
        await client.publish(world.topic("wristband", "WB1", "sos"), message({"location": None}), qos=1)
    finally:
        await client.__aexit__(None, None, None)
        await dclient.__aexit__(None, None, None)

    # A message no wristband sends never reaches the hub now: the broker's ACL refuses it (test_broker_security).
    expected = sorted([reason for _, _, reason in bad] + ["type_mismatch"])
    async with await psycopg.AsyncConnection.connect(settings.db_url, autocommit=True) as conn:
        alert_after = None
        while time.monotonic() - sent < 5:
            if alert_after is None and await (await conn.execute("SELECT 1 FROM alerts WHERE type='sos'")).fetchone():
                alert_after = time.monotonic() - sent
            reasons = [r for (r,) in await (await conn.execute("SELECT reason FROM dead_letters")).fetchall()]
            if alert_after is not None and len(reasons) >= len(expected):
                break
    assert sorted(reasons) == expected
    assert alert_after is not None and alert_after < 1.0
    assert running_hub.health.counters["dead_letter.malformed_json"] == 1


async def test_unknown_device_is_dead_lettered(running_hub, world, settings):
    from hub.ingest.inbound import Inbound

    running_hub.pipeline.deliver(Inbound(world.topic("wristband", "GHOST", "sos"), message({}), time.time(),
                                         None, True))
    await running_hub.writer.drain()
    deadline = time.monotonic() + 3
    async with await psycopg.AsyncConnection.connect(settings.db_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = await (await conn.execute("SELECT reason, device_id FROM dead_letters")).fetchone()
            if row:
                break
    assert row == ("unknown_device", "GHOST"), running_hub.health.counters


async def test_an_unknown_message_is_dead_lettered(running_hub, world, settings):
    from hub.ingest.inbound import Inbound

    await world.resident("R1")
    await world.device("WBU", "wristband", "R1")
    running_hub.pipeline.deliver(Inbound(world.topic("wristband", "WBU", "teleport"), message({}), time.time()))
    await running_hub.writer.drain()
    assert await _dead_letter(settings) == ("unknown_message", "WBU")


async def _dead_letter(settings) -> tuple[str, str] | None:
    deadline = time.monotonic() + 3
    row = None
    async with await psycopg.AsyncConnection.connect(settings.db_url, autocommit=True) as conn:
        while row is None and time.monotonic() < deadline:
            row = await (await conn.execute("SELECT reason, device_id FROM dead_letters")).fetchone()
    return row


async def test_a_topic_naming_another_device_deeper_is_recorded_as_the_publisher(running_hub, world, services,
                                                                                settings):
    """Finding 10: `<root>/wristband/A/WR00020/x` is A's dead letter; WR00020's operators must not see it."""
    import aiomqtt

    await world.resident("R1")
    await world.device("WBA1", "wristband", "R1")
    await world.device("WR00020", "wristband", "R1")
    # The hub's own account may still publish anywhere (a device cannot: the ACL); this is a real broker trip.
    async with aiomqtt.Client("127.0.0.1", services.broker.port, username="hub",
                              password=services.hub_password) as client:
        await client.publish(f"{world.topic_root}/wristband/WBA1/WR00020/x", message({}), qos=1)
    assert await _dead_letter(settings) == ("bad_topic", "WBA1")

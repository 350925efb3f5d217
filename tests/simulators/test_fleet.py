"""The fleet: households publish valid native messages with their own credentials; gateways share connections."""

from __future__ import annotations

import asyncio
import json
import random
import time
from datetime import UTC, datetime

import aiomqtt
import pytest

from devices.registry import device_types
from simulators.fleet import Fleet, Stats, VirtualClock, clock_for, direct_links
from simulators.gateway import gateway_links, z2m_payload
from simulators.household import DbProvisioner, SimDevice, make_households

pytestmark = pytest.mark.anyio


def test_virtual_time_never_passes_real_time():
    clock = clock_for(600, 30, now=1_700_000_000.0)
    assert clock.virtual0 + 30 * 600 < 1_700_000_000.0 + 30


async def _collect(services, topic: str, into: list[aiomqtt.Message], ready: asyncio.Event) -> None:
    async with aiomqtt.Client("127.0.0.1", services.broker.port, username="hub",
                              password=services.hub_password) as client:
        await client.subscribe(topic)
        ready.set()
        async for msg in client.messages:
            into.append(msg)


async def test_households_publish_decodable_messages_as_themselves(world, services, topic_root, db_url):
    houses = make_households(2, "tf", random.Random(1))
    await DbProvisioner(db_url, str(services.broker.passwd_file), str(services.broker.pid_file)).provision(houses)
    got: list[aiomqtt.Message] = []
    ready = asyncio.Event()
    listener = asyncio.create_task(_collect(services, f"{topic_root}/#", got, ready))
    await ready.wait()
    stats = Stats()
    fleet = Fleet(houses, direct_links(houses, "127.0.0.1", services.broker.device_port, topic_root, stats),
                  clock_for(3600, 4), stats, seed=3, imu_rate_hz=25)
    await fleet.run(asyncio.Event(), duration_s=4)
    await asyncio.sleep(0.3)
    listener.cancel()
    assert stats.errors == 0 and stats.published > 50
    types = device_types()
    senders = set()
    for msg in got:
        dtype, device_id, kind = str(msg.topic)[len(topic_root) + 1:].split("/")
        obs = types.get(dtype).decode(device_id, kind, msg.payload, datetime.now(UTC), 300)  # type: ignore[arg-type]
        assert obs.ts <= datetime.now(UTC)
        senders.add(device_id)
    assert senders == {d.device_id for h in houses for d in h.devices}
    kinds = {str(m.topic).rsplit("/", 1)[1] for m in got}
    assert {"availability", "heartbeat", "location", "state", "imu"} <= kinds


async def test_zigbee2mqtt_gateway_carries_a_households_sensors_on_one_connection(services):
    password = "z2m-test-pw"
    services.store.set_password("zigbee2mqtt", password)
    houses = make_households(3, "tg", random.Random(2))
    stats = Stats()
    links, left = gateway_links(houses, "z2m", 20, "127.0.0.1", services.broker.device_port, "zigbee2mqtt", password,
                                "t/x/v1", stats, z2m_base="z2m/x")
    assert {d.device_type for d in left} == {"wristband"}
    assert len(links) == 1 and len(links[0].devices) == sum(len(h.devices) for h in houses) - 3
    got: list[aiomqtt.Message] = []
    ready = asyncio.Event()
    listener = asyncio.create_task(_collect(services, "z2m/x/#", got, ready))
    await ready.wait()
    # Simulated time runs from a fixed noon (Shanghai), so the residents are awake and moving whatever hour the
    # test runs at: simulated time that ended at the real now fell in Shanghai's night near midnight UTC.
    noon = datetime(2026, 6, 1, 4, tzinfo=UTC).timestamp()
    fleet = Fleet(houses, links, VirtualClock(3600, time.time(), noon), stats, seed=1)
    await fleet.run(asyncio.Event(), duration_s=4)
    await asyncio.sleep(0.3)
    listener.cancel()
    states = [json.loads(m.payload) for m in got if not str(m.topic).endswith("/availability")]  # type: ignore[arg-type]
    assert states and all("linkquality" in s for s in states)
    assert any("occupancy" in s for s in states)


def test_z2m_field_mapping():
    door = SimDevice("d1", "door", "r", "h", "entrance", "exit")
    assert z2m_payload(door, "state", {"contact": "closed"})["contact"] is True
    radar = SimDevice("r1", "radar", "r", "h", "bathroom", "radar")
    assert z2m_payload(radar, "state", {"presence": True, "fall": "fall"})["fall_down_status"] == "fall"
    assert z2m_payload(door, "sos", {}) is None


async def test_a_severed_gateway_leaves_its_last_will_and_comes_back(services):
    password = "z2m-sever-pw"
    services.store.set_password("zigbee2mqtt", password)
    houses = make_households(1, "tv", random.Random(3))
    stats = Stats()
    links, _ = gateway_links(houses, "z2m", 20, "127.0.0.1", services.broker.device_port, "zigbee2mqtt", password,
                             "t/y/v1", stats, z2m_base="z2m/y")
    got: list[aiomqtt.Message] = []
    ready = asyncio.Event()
    listener = asyncio.create_task(_collect(services, "z2m/y/bridge/state", got, ready))
    await ready.wait()
    stop = asyncio.Event()
    run = asyncio.create_task(links[0].run(stop))
    await asyncio.wait_for(links[0].ready.wait(), 10)
    links[0].sever(0.5)
    await asyncio.sleep(0.2)
    assert not links[0].ready.is_set()
    await asyncio.wait_for(links[0].ready.wait(), 10)  # back after its half second away
    stop.set()
    await asyncio.wait_for(run, 10)
    await asyncio.sleep(0.3)
    listener.cancel()
    assert stats.reconnects == 1 and stats.errors == 0
    assert {"state": "offline"} in [json.loads(m.payload) for m in got]  # type: ignore[arg-type]

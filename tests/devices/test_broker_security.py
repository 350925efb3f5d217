"""Against the real Mosquitto with the repository's config: devices act only as themselves."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import aiomqtt
import pytest

from devices.credentials import hash_password, verify_password
from simulators.native import message

pytestmark = pytest.mark.anyio


async def _hub_listener(services, root: str) -> aiomqtt.Client:
    client = aiomqtt.Client("127.0.0.1", services.broker.port, username="hub", password=services.hub_password,
                            identifier=f"listener-{uuid.uuid4().hex[:6]}")
    await client.__aenter__()
    await client.subscribe(f"{root}/#", qos=1)
    return client


async def _received(listener: aiomqtt.Client, seconds: float = 1.0) -> list[str]:
    got: list[str] = []

    async def collect() -> None:
        async for msg in listener.messages:
            got.append(str(msg.topic))

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(collect(), seconds)
    return got


async def test_device_cannot_publish_as_another_device(world, devices, services, topic_root):
    await world.resident("R1")
    a = await world.device("WBA", "wristband", "R1")
    await world.device("WBB", "wristband", "R1")
    listener = await _hub_listener(services, topic_root)
    client = await devices.connect("WBA", a)
    try:
        await client.publish(world.topic("wristband", "WBB", "sos"), message({}), qos=1)  # spoof
        await client.publish(world.topic("wristband", "WBA", "sos"), message({}), qos=1)  # itself
        got = await _received(listener)
    finally:
        await client.__aexit__(None, None, None)
        await listener.__aexit__(None, None, None)
    assert got == [world.topic("wristband", "WBA", "sos")]


async def test_device_cannot_read_other_devices_data(world, devices, services):
    await world.resident("R1")
    a = await world.device("WBC", "wristband", "R1")
    b = await world.device("WBD", "wristband", "R1")
    spy = await devices.connect("WBC", a)
    victim = await devices.connect("WBD", b)
    try:
        await spy.subscribe(f"{world.topic_root}/#", qos=1)
        await victim.publish(world.topic("wristband", "WBD", "location"),
                             message({"lat": 22.5, "lon": 114.0, "acc_m": 5}), qos=1)
        got = await _received(spy)
    finally:
        await spy.__aexit__(None, None, None)
        await victim.__aexit__(None, None, None)
    assert got == []


async def test_anonymous_and_wrong_password_are_refused(services):
    for kwargs in ({}, {"username": "hub", "password": "wrong"}):
        with pytest.raises(aiomqtt.MqttError):
            async with aiomqtt.Client("127.0.0.1", services.broker.port, **kwargs):
                pass


async def test_revoked_device_can_no_longer_connect(world, devices, services):
    await world.resident("R1")
    secret = await world.device("WBE", "wristband", "R1")
    client = await devices.connect("WBE", secret)
    await client.__aexit__(None, None, None)
    services.store.remove("WBE")
    await asyncio.sleep(0.3)  # SIGHUP reload
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client("127.0.0.1", services.broker.device_port, username="WBE", password=secret):
            pass


async def test_oversized_packet_is_rejected_by_the_broker(world, devices, services, topic_root):
    await world.resident("R1")
    secret = await world.device("WBF", "wristband", "R1")
    listener = await _hub_listener(services, topic_root)
    client = await devices.connect("WBF", secret)
    try:
        # The broker drops the connection of a client that exceeds max_packet_size.
        with contextlib.suppress(aiomqtt.MqttError):
            await client.publish(world.topic("wristband", "WBF", "imu"), b"x" * 300_000, qos=1, timeout=2)
        got = await _received(listener)
    finally:
        await listener.__aexit__(None, None, None)
        with contextlib.suppress(aiomqtt.MqttError):
            await client.__aexit__(None, None, None)
    assert got == []


def test_password_hash_matches_mosquitto_format():
    hashed = hash_password("s3cret", salt=b"0123456789ab")
    assert hashed.startswith("$7$101$")
    assert verify_password("s3cret", hashed)
    assert not verify_password("other", hashed)


async def test_a_device_cannot_take_over_another_devices_session(world, services, topic_root):
    """On the device listener the account is the client id: reusing a victim's client id kicks nobody."""
    await world.resident("R1")
    victim_pw = await world.device("WBV", "wristband", "R1")
    attacker_pw = await world.device("WBX", "wristband", "R1")
    listener = await _hub_listener(services, topic_root)
    lost: list[str] = []
    victim = aiomqtt.Client("127.0.0.1", services.broker.device_port, username="WBV", password=victim_pw,
                            identifier="WBV")
    attacker = aiomqtt.Client("127.0.0.1", services.broker.device_port, username="WBX", password=attacker_pw,
                              identifier="WBV")  # the victim's client id
    await victim.__aenter__()
    try:
        await attacker.__aenter__()
        await asyncio.sleep(0.5)
        try:
            await victim.publish(world.topic("wristband", "WBV", "sos"), message({"location": None}), qos=1,
                                 timeout=2)
        except aiomqtt.MqttError as err:
            lost.append(type(err).__name__)
        got = await _received(listener)
        await attacker.__aexit__(None, None, None)
    finally:
        with contextlib.suppress(aiomqtt.MqttError):
            await victim.__aexit__(None, None, None)
        await listener.__aexit__(None, None, None)
    assert lost == []
    assert world.topic("wristband", "WBV", "sos") in got


async def test_on_the_services_listener_a_device_account_is_refused(world, services):
    """Finding 12: there client ids are free (the hub's workers share an account), so devices may not log in."""
    await world.resident("R1")
    victim_pw = await world.device("WBY", "wristband", "R1")
    attacker_pw = await world.device("WBZ", "wristband", "R1")
    victim = aiomqtt.Client("127.0.0.1", services.broker.device_port, username="WBY", password=victim_pw)
    await victim.__aenter__()
    try:
        with pytest.raises(aiomqtt.MqttError):
            async with aiomqtt.Client("127.0.0.1", services.broker.port, username="WBZ", password=attacker_pw,
                                      identifier="WBY"):
                pass
        await victim.publish(world.topic("wristband", "WBY", "heartbeat"), b"{}", qos=1, timeout=2)
    finally:
        await victim.__aexit__(None, None, None)


async def _retained(services, topic: str) -> list[str]:
    """Topics under `topic` the broker still holds retained messages for (a fresh subscriber's view)."""
    async with aiomqtt.Client("127.0.0.1", services.broker.port, username="hub", password=services.hub_password,
                              identifier=f"retained-{uuid.uuid4().hex[:6]}", clean_session=True) as probe:
        await probe.subscribe(topic, qos=1)
        return await _received(probe, 1.0)


async def test_a_device_publishes_only_its_declared_message_topics(world, devices, services, topic_root):
    """Findings 9 and 10: no retained payloads parked under sub-topics, no other device named deeper."""
    await world.resident("R1")
    secret = await world.device("WBR", "wristband", "R1")
    await world.device("WBO", "wristband", "R1")
    listener = await _hub_listener(services, topic_root)
    client = await devices.connect("WBR", secret)
    junk = [world.topic("wristband", "WBR", "stash"),                 # not a message wristbands send
            world.topic("wristband", "WBR", "heartbeat") + "/deeper",  # a sub-topic of a real one
            f"{topic_root}/wristband/WBR/WBO/sos"]                   # another device, one level deeper
    try:
        for topic in junk:
            await client.publish(topic, b"x" * 200_000, qos=1, retain=True)
        await client.publish(world.topic("wristband", "WBR", "availability"), b'{"v":1,"state":"online"}', qos=1,
                             retain=True)
        got = await _received(listener)
    finally:
        await client.__aexit__(None, None, None)
        await listener.__aexit__(None, None, None)
    assert got == [world.topic("wristband", "WBR", "availability")]
    assert await _retained(services, f"{topic_root}/wristband/WBR/#") == [world.topic("wristband", "WBR",
                                                                                      "availability")]



"""The MQTT source on the event loop: a full critical queue pauses reading (nothing dropped), draining resumes it."""

from __future__ import annotations

import asyncio
import time

import pytest

from hub.health import Health
from hub.ingest.inbound import Inbound
from hub.ingest.mqtt_source import MqttSource
from simulators.native import message

pytestmark = pytest.mark.anyio


async def _until(predicate, within: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_a_full_critical_queue_pauses_reading_and_loses_nothing(settings, world, devices):
    rid = await world.resident("R1")
    client = await devices.connect("MO1", await world.device("MO1", "motion", rid, room="hall"))
    received: list[Inbound] = []
    room = {"critical": 10}
    source = MqttSource(settings.mqtt_url, f"src-{settings.mqtt_client_id}", [f"{settings.mqtt_topic_root}/#"],
                        received.append, Health(), critical_room=lambda: len(received) < room["critical"],
                        telemetry_room=lambda: True)
    source.start(asyncio.get_running_loop())
    try:
        await _until(lambda: source._health.broker.ok, 10)
        await asyncio.sleep(0.2)  # the subscription is made on connect
        for i in range(40):
            await client.publish(world.topic("motion", "MO1", "state"), message({"motion": i % 2 == 0},
                                 msg_id=f"m{i}"), qos=1)
        await _until(lambda: len(received) >= 10, 10)
        await asyncio.sleep(0.5)
        # The message that filled the queue is kept; then the socket is left unread.
        assert len(received) == 11
        assert source._paused
        room["critical"] = 1000
        source.notify_drained()
        await _until(lambda: len(received) == 40, 10)
        assert [r.payload for r in received] == [r.payload for r in sorted(received, key=lambda r: r.received)]
        assert all(r.critical_hint and r.ack is not None for r in received)
        for r in received:
            assert r.ack is not None
            r.ack()
    finally:
        await client.__aexit__(None, None, None)
        source.stop()


async def test_a_backlog_is_read_in_large_chunks_and_every_message_arrives_once(settings, world, devices):
    rid = await world.resident("R1")
    client = await devices.connect("MO1", await world.device("MO1", "motion", rid, room="hall"))
    received: list[Inbound] = []
    room = {"open": False}
    source = MqttSource(settings.mqtt_url, f"src-{settings.mqtt_client_id}", [f"{settings.mqtt_topic_root}/#"],
                        received.append, Health(), critical_room=lambda: room["open"], telemetry_room=lambda: True)
    source.start(asyncio.get_running_loop())
    try:
        await _until(lambda: source._health.broker.ok, 10)
        await asyncio.sleep(0.2)
        n = 300
        for i in range(n):
            await client.publish(world.topic("motion", "MO1", "state"), message({"motion": i % 2 == 0},
                                 msg_id=f"m{i}"), qos=1)
        await _until(lambda: source._paused, 10)  # the first message paused reading: the rest wait unread
        await asyncio.sleep(0.5)
        reads_before = source.client.socket_reads
        room["open"] = True
        source.notify_drained()
        await _until(lambda: len(received) == n, 10)
        await asyncio.sleep(0.3)
        assert len(received) == n and len({r.payload for r in received}) == n  # each once, none lost
        # paho alone makes three or more recv calls per packet; here one call serves many packets.
        assert source.client.socket_reads - reads_before < n / 10
        for r in received:
            assert r.ack is not None
            r.ack()
    finally:
        await client.__aexit__(None, None, None)
        source.stop()

"""Per-device token buckets: telemetry over a device's rate is shed and counted; alarms collapse per kind."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from hub.ingest.ratelimit import DeviceLimiter, RateLimits, device_key
from simulators.native import message


class Clock:
    """A hand-moved monotonic clock."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_device_gets_its_burst_then_its_rate():
    clock = Clock()
    limiter = DeviceLimiter(RateLimits(rate=2, burst=5, urgent_rate=1, urgent_burst=2), clock)
    taken = [limiter.admit("r/wristband/A", "r/wristband/A/heartbeat", False) for _ in range(8)]
    assert taken == [True] * 5 + [False] * 3
    assert limiter.admit("r/wristband/B", "r/wristband/B/heartbeat", False)  # another device is untouched
    clock.now += 1.0  # two tokens back
    assert [limiter.admit("r/wristband/A", "r/wristband/A/imu", False) for _ in range(3)] == [True, True, False]


def test_alarms_have_a_bucket_per_kind_so_a_flood_of_one_never_hides_an_sos():
    clock = Clock()
    limiter = DeviceLimiter(RateLimits(rate=2, burst=5, urgent_rate=1, urgent_burst=2), clock)
    for _ in range(10):
        limiter.admit("r/wristband/A", "r/wristband/A/heartbeat", False)
    alarms = [limiter.admit("r/wristband/A", "r/wristband/A/alarm", True) for _ in range(5)]
    assert alarms == [True, True, False, False, False]
    assert limiter.admit("r/wristband/A", "r/wristband/A/sos", True)  # telemetry and alarms spent: SOS passes


def test_a_full_table_forgets_the_quietest_device_not_the_flooding_one(monkeypatch):
    monkeypatch.setattr("hub.ingest.ratelimit._MAX_BUCKETS", 3)
    limiter = DeviceLimiter(RateLimits(rate=0.001, burst=2), Clock())
    flood = [limiter.admit("r/w/LOUD", "r/w/LOUD/heartbeat", False) for _ in range(3)]
    for name in ("A", "B", "C", "D"):  # more devices than the table holds, the flooder still sending
        limiter.admit(f"r/w/{name}", f"r/w/{name}/heartbeat", False)
        flood.append(limiter.admit("r/w/LOUD", "r/w/LOUD/heartbeat", False))
    assert flood == [True, True] + [False] * 5  # wiping the table would have refilled its bucket


def test_device_key():
    assert device_key("eldercare/v1/door/D1/state", "zigbee2mqtt") == "eldercare/v1/door/D1"
    assert device_key("zigbee2mqtt/hall_door", "zigbee2mqtt") == "zigbee2mqtt/hall_door"
    assert device_key("zigbee2mqtt/hall_door/availability", "zigbee2mqtt") == "zigbee2mqtt/hall_door"


@pytest.mark.anyio
async def test_telemetry_over_a_devices_rate_is_shed_and_counted_per_device(running_hub, world, devices, settings):
    """Through the real broker: 1,000 heartbeats at once from one device, 10 from another."""
    await world.resident("R1")
    loud = await world.device("LOUD1", "wristband", "R1")
    calm = await world.device("CALM1", "wristband", "R1")
    loud_client = await devices.connect("LOUD1", loud)
    calm_client = await devices.connect("CALM1", calm)
    try:
        for i in range(1000):
            await loud_client.publish(world.topic("wristband", "LOUD1", "heartbeat"),
                                      message({"battery": 80}, msg_id=f"h{i}"), qos=1)
        for i in range(10):
            await calm_client.publish(world.topic("wristband", "CALM1", "heartbeat"),
                                      message({"battery": 80}, msg_id=f"c{i}"), qos=1)
    finally:
        await loud_client.__aexit__(None, None, None)
        await calm_client.__aexit__(None, None, None)
    counters = running_hub.health.counters
    for _ in range(100):
        if counters.get("rate_limited.LOUD1", 0) + counters.get("messages_in", 0) >= 1010:
            break
        await asyncio.sleep(0.1)
    await running_hub.writer.drain()
    shed = counters.get("rate_limited.LOUD1", 0)
    assert shed >= 1000 - settings.device_burst - 30 * settings.device_rate_per_s  # at most ~30 s of refill
    assert shed > 0
    assert "rate_limited.CALM1" not in counters
    assert counters["rate_limited"] == shed
    assert counters["messages_in"] == 1010 - shed  # the calm device's ten all went through
    async with await psycopg.AsyncConnection.connect(settings.db_url) as conn:
        row = await (await conn.execute("SELECT battery FROM device_status WHERE device_id = 'CALM1'")).fetchone()
    assert row == (80.0,)
    import httpx

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.api_port}") as http:
        metrics = (await http.get("/metrics")).text
    assert f'eldercare_device_messages_shed_total{{device="LOUD1"}} {float(shed)}' in metrics
    assert f"eldercare_messages_rate_limited_total {float(shed)}" in metrics

"""Mosquitto restarts on the same persistence file: the hub reconnects, queued QoS 1 messages arrive, devices return."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time

import psycopg
import pytest

from simulators import bench
from simulators.fleet import DirectLink, Stats
from simulators.household import SimDevice
from simulators.native import message
from tests.faults.conftest import ROOT, report, restart, seed_fleet, sos_summary, wait_for

pytestmark = pytest.mark.anyio

DEVICES = 100  # 20 residents


def _sos(resident: int, t: float, tag: str = "") -> tuple[str, bytes]:
    return f"{ROOT}/wristband/BW{resident:06d}/sos", message({"location": None}, ts=t,
                                                               msg_id=f"sos{tag}-{resident}")


def _sensor_events(db_url: str, since: float, until: float) -> int:
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM device_events WHERE device_id LIKE 'BS%%'"
                           " AND ts >= to_timestamp(%s) AND ts < to_timestamp(%s)", (since, until)).fetchone()
    return int(row[0]) if row else 0


async def _until(predicate, within: float, what: str):  # type: ignore[no-untyped-def]
    return await asyncio.to_thread(wait_for, predicate, within, what)


async def test_hub_and_devices_recover_when_the_broker_restarts(broker, db_url, hub_process):
    seed_fleet(db_url, DEVICES)
    device = SimDevice("BW000019", "wristband", "BR000019", "BH000019", None, "wristband", "dev-pw-19")
    broker.store.set_many({device.device_id: device.password})
    t0 = time.time() - 30
    hub = hub_process(db_url, broker)
    hub.start()
    await asyncio.to_thread(hub.wait_ready)

    stop = asyncio.Event()
    stats = Stats()
    link = DirectLink(device, "127.0.0.1", broker.port, ROOT, stats)
    device_task = asyncio.create_task(link.run(stop))
    publisher = broker.publisher()
    try:
        await asyncio.wait_for(link.ready.wait(), 15)
        # Batch A while everything is up.
        batch_a = [_sos(r, t0 + r) for r in range(5)]
        await asyncio.to_thread(publisher.publish, batch_a)
        await _until(lambda: sos_summary(db_url, t0 - 1)["sos_alerts"] == 5, 10, "batch A alerts")

        # Batch B reaches the broker while the hub is frozen, so it is queued or in flight, unacknowledged,
        # when the broker stops; the broker saves it to its persistence file on the way out.
        hub.pause()
        rng = random.Random(3)
        batch_b = [_sos(r, t0 + r) for r in range(5, 15)]
        batch_b += bench.build(200, DEVICES, {"sensor": 1.0}, 0, rng, t0 + 20).messages
        await asyncio.to_thread(publisher.publish, batch_b)
        publisher.close()
        broker.instance.stop()
        stopped = time.monotonic()
        hub.resume()
        down = await _until(lambda: (h := hub.health()) and not h["broker"]["ok"] and h, 15,
                            "/health reporting the broker outage")
        detected_s = time.monotonic() - stopped
        await asyncio.sleep(1.0)
        # What the frozen hub read from its socket before noticing the drop (its acks died with the connection).
        early = sos_summary(db_url, t0 - 1)["sos_alerts"] - 5
        restart(broker.instance)
        started = time.monotonic()
        up = await _until(lambda: (h := hub.health()) and h["broker"]["ok"] and h, 45,
                          "/health reporting the broker back")
        hub_back_s = time.monotonic() - started
        after_b = await _until(lambda: (s := sos_summary(db_url, t0 - 1))["sos_alerts"] >= 15 and s, 20,
                               "batch B alerts after the broker restart")
        batch_b_s = time.monotonic() - started

        # The simulated device reconnects on its own and its next SOS gets through.
        await asyncio.wait_for(link.ready.wait(), 30)
        device_back_s = time.monotonic() - started
        assert await link.publish(device, "sos", message({"location": None}, ts=time.time() - 1), qos=1)
        final = await _until(lambda: (s := sos_summary(db_url, t0 - 1))["sos_alerts"] >= 16 and s, 15,
                             "the reconnected device's SOS alert")
        redelivered = (hub.health() or {}).get("ingest", {}).get("counters", {}).get("duplicates_ignored", 0)

        # Batch C is queued for the hub's persistent session while the hub is away, survives a second broker
        # restart in mosquitto.db, and reaches the hub when it comes back.
        await asyncio.to_thread(hub.stop)
        publisher = broker.publisher()
        batch_c = [_sos(r, t0 + 40 + r, "-c") for r in range(10)]
        batch_c += bench.build(200, DEVICES, {"sensor": 1.0}, 0, random.Random(4), t0 + 60).messages
        await asyncio.to_thread(publisher.publish, batch_c)
        publisher.close()
        broker.instance.stop()
        restart(broker.instance)
        hub.start()
        started_c = time.monotonic()
        after_c = await _until(
            lambda: (s := sos_summary(db_url, t0 - 1))["sos_events"] >= 26 and _sensor_events(db_url, t0 + 59, t0 + 99)
            >= 200 and s, 30, "batch C, queued while the hub was away, after a broker restart")
        batch_c_s = time.monotonic() - started_c
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(device_task, 15)
        publisher.close()

    sensors_b = _sensor_events(db_url, t0 + 19, t0 + 50)
    sensors_c = _sensor_events(db_url, t0 + 59, t0 + 99)
    figures = {
        "sos_before_restart": 5, "queued_while_hub_frozen": len(batch_b), "sos_queued": 10,
        "queued_sos_stored_before_broker_back": early,
        "sensor_state_queued": 200, "sensor_state_stored": sensors_b,
        "sos_alerts_after_restart": after_b["sos_alerts"], "sos_alerts_total": final["sos_alerts"],
        "duplicates_b": final["triggers"] - 16, "redeliveries_ignored": redelivered,
        "queued_while_hub_away_c": len(batch_c), "sos_events_after_c": after_c["sos_events"],
        "sensor_state_stored_c": sensors_c, "duplicates_c": after_c["triggers"] - 26,
        "batch_c_stored_after_hub_start_s": round(batch_c_s, 2),
        "outage_seen_by_health_after_s": round(detected_s, 2),
        "health_during_outage": {"ok": down["broker"]["ok"], "error": down["broker"]["error"]},
        "hub_reconnected_after_broker_start_s": round(hub_back_s, 2),
        "queued_sos_stored_after_broker_start_s": round(batch_b_s, 2),
        "device_reconnected_after_broker_start_s": round(device_back_s, 2),
        "health_after": {k: up["broker"][k] for k in ("ok", "outages", "last_outage_s")},
    }
    report("Mosquitto restarted (persistent session, queued QoS 1)", figures)
    assert down["broker"]["error"]
    assert up["broker"]["outages"] >= 1 and up["broker"]["last_outage_s"] is not None
    assert after_b["sos_alerts"] == 15 and final["sos_alerts"] == 16 and figures["duplicates_b"] == 0
    assert figures["sensor_state_stored"] == 200, "in-flight critical state messages were lost"
    assert after_c["sos_events"] == 26 and after_c["triggers"] == 26 and after_c["sos_alerts"] == 16
    assert sensors_c == 200, "queued critical state messages were lost"

"""Issue 17 findings 6 and 7 over MQTT: a device flooding one alarm leaves one alert with a count and a few
timeline rows, every alarm is accounted for (on the alert, or collapsed at the device's rate limit), and a
later comment stays on the first page of the timeline."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from simulators.native import message

pytestmark = pytest.mark.anyio

FLOOD = 1000


async def test_an_alarm_flood_is_one_alert_with_a_count_and_a_short_timeline(
        running_hub: Any, world: Any, devices: Any, login: Any, settings: Any) -> None:
    await world.resident("R1")
    await world.user("op", "operator")
    password = await world.device("WBF", "wristband", "R1")
    client = await devices.connect("WBF", password)
    started = time.monotonic()
    try:
        for n in range(FLOOD):
            await client.publish(world.topic("wristband", "WBF", "alarm"),
                                 message({"alarms": ["removed"]}, msg_id=f"flood-{n}"), qos=1)
    finally:
        await client.__aexit__(None, None, None)
    base = f"http://127.0.0.1:{settings.api_port}"
    headers = await login(base, "op", "op-pw")
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as http:
        counters = running_hub.health.counters
        deadline = time.monotonic() + 120
        while True:
            items = (await http.get("/api/alerts", params={"resident_id": "R1"})).json()["items"]
            stored = items[0]["trigger_count"] if items else 0
            collapsed = counters.get("rate_limited.WBF", 0)
            if stored + collapsed >= FLOOD:
                break
            assert time.monotonic() < deadline, f"{stored} triggers stored, {collapsed} collapsed of {FLOOD}"
            await asyncio.sleep(0.5)
        elapsed = time.monotonic() - started
        [alert] = items
        assert alert["type"] == "device_removed"
        # Beyond its per-kind burst the device's repeats are collapsed at the door and counted, never queued:
        # they cannot slow another device's SOS, and none is unaccounted for.
        assert alert["trigger_count"] + counters["rate_limited.WBF"] == FLOOD
        assert alert["trigger_count"] >= settings.device_alarm_burst
        assert (await http.post(f"/api/alerts/{alert['id']}/comment", json={"text": "calling"})).status_code == 200
        entries = (await http.get(f"/api/alerts/{alert['id']}/timeline")).json()
    runs = [e["details"]["count"] for e in entries if e["kind"] == "retriggered"]
    print(f"\nFLOOD {FLOOD} alarms in {elapsed:.1f} s: {len(entries)} timeline rows, retrigger runs {runs}")
    assert sum(runs) == alert["trigger_count"] - 1 and len(runs) <= 10
    assert entries[-1]["kind"] == "comment" and entries[0]["kind"] == "created"

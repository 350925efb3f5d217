"""A watch over TCP → the gateway → the broker → the hub: an SOS without a fix still becomes an alert."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime

import psycopg
import pytest

from devices.watch3g import build_al, build_ud, encode_status
from devices.watch3g.bridge import serve
from hub.embedded import free_port

pytestmark = pytest.mark.anyio
WATCH = "8650280001234"


async def _reply(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.readuntil(b"]"), 5)


async def test_watch_sos_without_fix_reaches_an_alert_with_last_known_location(running_hub, world, services,
                                                                              settings):
    rid = await world.resident("R1")
    await world.device(WATCH, "watch3g", rid)
    services.store.set_password("gw-watch3g", "gw-secret")
    port = free_port()
    gateway = asyncio.create_task(serve("127.0.0.1", port, "127.0.0.1", services.broker.device_port, "gw-watch3g",
                                        "gw-secret", root=settings.mqtt_topic_root))
    try:
        for _ in range(100):
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                await asyncio.sleep(0.05)
        now = datetime.now(UTC).replace(microsecond=0)
        writer.write(build_ud(WATCH, now, 22.5431, 114.0579, True, 80))
        await writer.drain()
        await asyncio.sleep(0.5)  # the fix is on record before the alarm
        sos = encode_status({"sos", "low_battery"})
        writer.write(build_al(WATCH, now, 0.0, 0.0, False, 15, sos))
        await writer.drain()
        ack = await _reply(reader)
        writer.close()
    finally:
        gateway.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await gateway
    assert ack.endswith(b"*AL]")

    deadline = time.monotonic() + 5
    async with await psycopg.AsyncConnection.connect(settings.db_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            rows = await (await conn.execute(
                "SELECT type, severity, location, details FROM alerts ORDER BY id")).fetchall()
            if any(r[0] == "sos" for r in rows):
                break
            await asyncio.sleep(0.05)
    sos_alert = next(r for r in rows if r[0] == "sos")
    assert sos_alert[1] == "critical"
    assert sos_alert[2] is None  # no fix in the alarm itself
    assert sos_alert[3]["location_known"] is False
    assert sos_alert[3]["last_known_location"]["lat"] == pytest.approx(22.5431)
    assert "low_battery" in {r[0] for r in rows}  # both bits decoded, neither hides the other

"""Device health: a silent wristband is offline within minutes, a door sensor within hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from devices.registry import device_types
from hub.detection.device_health import check

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


async def _status(db_url: str, device_id: str, last_seen: datetime, worn: bool | None = None,
                  worn_since: datetime | None = None) -> None:
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        # updated_at is when the hub last heard from the device: what "offline" is measured on.
        await conn.execute("INSERT INTO device_status (device_id, last_seen, updated_at, worn, worn_since) VALUES"
                           " (%s, %s, %s, %s, %s)", (device_id, last_seen, last_seen, worn, worn_since))


async def test_thresholds_follow_the_device_type(db_url, world):
    await world.resident("R1")
    for device_id, dtype in (("WB1", "wristband"), ("WB2", "wristband"), ("DO1", "door"), ("WB3", "wristband")):
        await world.device(device_id, dtype, "R1")
    await _status(db_url, "WB1", NOW - timedelta(minutes=15), worn=True)  # silent 15 min: offline
    await _status(db_url, "WB2", NOW - timedelta(minutes=2), worn=True)  # fine
    await _status(db_url, "DO1", NOW - timedelta(minutes=15))  # a door sensor may be quiet that long
    await _status(db_url, "WB3", NOW - timedelta(minutes=1), worn=False, worn_since=NOW - timedelta(hours=3))
    async with AsyncConnectionPool(db_url, min_size=1, max_size=2, open=False) as pool:
        found = await check(pool, device_types(), NOW)
    assert sorted((t.source_device, t.type) for t in found) == [("WB1", "device_offline"), ("WB3", "device_removed")]

    assert {t.severity for t in found} == {"medium"}


async def test_a_device_clock_in_the_past_is_not_offline(db_url, world):
    await world.resident("R1")
    await world.device("WB9", "wristband", "R1")
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        # A watch whose clock is three hours behind, heard from a minute ago.
        await conn.execute("INSERT INTO device_status (device_id, last_seen, updated_at, worn) VALUES"
                           " ('WB9', %s, %s, true)", (NOW - timedelta(hours=3), NOW - timedelta(minutes=1)))
    async with AsyncConnectionPool(db_url, min_size=1, max_size=2, open=False) as pool:
        assert await check(pool, device_types(), NOW) == []


async def test_silence_while_the_hub_was_away_does_not_count(db_url, world):
    await world.resident("R1")
    await world.device("WB1", "wristband", "R1")
    await _status(db_url, "WB1", NOW - timedelta(hours=1), worn=True)  # last heard before the hub went down
    async with AsyncConnectionPool(db_url, min_size=1, max_size=2, open=False) as pool:
        restarted = NOW - timedelta(minutes=2)  # its backlog may not even be read yet
        assert await check(pool, device_types(), NOW, listening_since=restarted) == []
        # Still silent ten minutes (the wristband's limit) after the hub came back: offline after all.
        later = await check(pool, device_types(), restarted + timedelta(minutes=10, seconds=1),
                            listening_since=restarted)
    assert [(t.source_device, t.type) for t in later] == [("WB1", "device_offline")]
    assert later[0].details["last_heard"] == (NOW - timedelta(hours=1)).isoformat()

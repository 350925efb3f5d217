"""The emergency dispatch record: gathered from the database, rendered for the dispatcher in zh and en."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg.types.json import Jsonb

from alerts.dispatch import build_record, pick_location, save_record
from tests.alerts.conftest import raise_trigger

pytestmark = pytest.mark.anyio
TZ = ZoneInfo("Asia/Shanghai")


async def _resident(world, db_url: str) -> None:
    await world.resident("R1", contacts=0)
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        await conn.execute("UPDATE residents SET name = '张桂兰', gender = 'F', birth_year = 1941,"
                           " medical_notes = '高血压，糖尿病，青霉素过敏' WHERE id = 'R1'")
        await conn.execute("UPDATE households SET address = '福田区莲花街道幸福里3号楼502' WHERE id = 'HR1'")
        await conn.execute("INSERT INTO contacts (resident_id, position, name, relation, phone) VALUES"
                           " ('R1', 1, '王小红', '女儿', '13800138000'), ('R1', 2, '王建国', '儿子', NULL)")
        await conn.execute("INSERT INTO devices (id, type, resident_id, household_id) VALUES"
                           " ('WB1', 'wristband', 'R1', 'HR1')")


async def test_record_reads_out_who_where_and_what_in_chinese_and_english(world, db_url):
    await _resident(world, db_url)
    now = datetime.now(UTC)
    fix = {"lat": 22.54312, "lon": 114.05791, "acc_m": 12, "src": "gnss",
           "ts": (now - timedelta(seconds=20)).isoformat()}
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        await conn.execute("INSERT INTO device_status (device_id, last_location) VALUES ('WB1', %s)", (Jsonb(fix),))
    alert_id = await raise_trigger(db_url, "R1", "sos", device="WB1")
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        record = await build_record(conn, alert_id, "emergency_120", "ladder", now + timedelta(minutes=3), TZ)
        dispatch_id = await save_record(conn, alert_id, record, "ladder")
    data = record.data
    assert data["resident"]["age"] == now.year - 1941
    assert data["location"]["kind"] == "live" and data["location"]["origin"] == "device WB1"
    assert data["callback"] == "13800138000"
    zh, en = record.text_zh, record.text_en
    assert zh.startswith("【120调度】紧急求助（SOS）。老人：张桂兰，女，")
    for part in ("地址：福田区莲花街道幸福里3号楼502", "实时定位 北纬22.54312，东经114.05791，精度12米",
                 "病史：高血压，糖尿病，青霉素过敏", "设备WB1报警", "3分钟内无人确认", "王小红（女儿）13800138000",
                 f"告警编号{alert_id}"):
        assert part in zh
    assert en.startswith("[120 dispatch] SOS emergency call. Resident: 张桂兰, female,")
    assert "live location 22.54312 N, 114.05791 E, accuracy 12 m" in en
    assert "no acknowledgement in 3 min" in en
    assert len(zh) < 500  # the gateway's default read-out limit
    assert dispatch_id >= 1


def test_location_falls_back_to_last_known_then_home():
    now = datetime(2030, 1, 1, tzinfo=UTC)
    alert = {"location": None, "last_ts": now, "first_ts": now, "details": {}, "lat": 22.5, "lon": 114.0}
    stale = {"device_id": "WB1", "updated_at": now - timedelta(hours=2),
             "last_location": {"lat": 22.6, "lon": 114.1, "acc_m": 500, "src": "cell"}}
    loc = pick_location(alert, [stale], now)
    assert loc is not None and (loc["kind"], loc["lat"], loc["age_s"]) == ("last_known", 22.6, 7200)
    home = pick_location(alert, [], now)
    assert home is not None and (home["kind"], home["lat"]) == ("home_address", 22.5)
    alert["location"] = {"lat": 22.7, "lon": 114.2, "acc_m": 8, "src": "gnss"}
    live = pick_location(alert, [stale], now)
    assert live is not None and (live["kind"], live["origin"]) == ("live", "alarm")


async def test_missing_person_record_goes_to_110_with_home_coordinates_when_no_fix(world, db_url):
    await world.resident("R2", flags=("dementia",))
    alert_id = await raise_trigger(db_url, "R2", "not_home")
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        record = await build_record(conn, alert_id, "emergency_110", "confirmed", datetime.now(UTC), TZ)
    assert record.service == "110"
    assert "住址坐标（非实时）" in record.text_zh and "home address coordinates (not live)" in record.text_en
    assert record.text_zh.startswith("【110调度】未按时回家。")

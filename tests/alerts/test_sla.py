"""SLA figures per community from alerts, timelines and dispatches with known times."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg.types.json import Jsonb

from alerts.sla import sla_report

pytestmark = pytest.mark.anyio
T0 = datetime(2030, 3, 1, 8, 0, tzinfo=UTC)


async def _alert(conn, resident: str, alert_type: str, notify_s: float | None, ack_s: float | None,
                 resolution: str | None = None, dispatched: bool = False, at: datetime = T0) -> int:
    row = await (await conn.execute(
        "INSERT INTO alerts (resident_id, household_id, region_path, type, severity, first_ts, last_ts, created_at,"
        " acknowledged_at, closed_at, resolution, active)"
        " SELECT r.id, h.id, h.region_path, %s, 'critical', %s, %s, %s, %s, %s, %s, %s"
        " FROM residents r JOIN households h ON h.id = r.household_id WHERE r.id = %s RETURNING id",
        (alert_type, at, at, at, None if ack_s is None else at + timedelta(seconds=ack_s),
         at + timedelta(hours=1) if resolution else None, resolution, resolution is None, resident),
    )).fetchone()
    assert row is not None
    if notify_s is not None:
        await conn.execute("INSERT INTO alert_events (alert_id, ts, kind, details) VALUES"
                           " (%s, %s, 'notification', %s), (%s, %s, 'notification', %s)",
                           (row[0], at + timedelta(seconds=notify_s), Jsonb({"result": "ok"}),
                            row[0], at + timedelta(seconds=notify_s / 2), Jsonb({"result": "failed"})))
    if dispatched:
        await conn.execute("INSERT INTO alert_dispatches (alert_id, service, cause, record, text_zh, text_en)"
                           " VALUES (%s, '120', 'ladder', '{}', '', '')", (row[0],))
    return int(row[0])


async def _scene(world, db_url: str) -> None:
    await world.resident("R1")
    await world.resident("R2", community="sz/nanshan/shekou")
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        await _alert(conn, "R1", "sos", 1, 30, "false_alarm")
        await _alert(conn, "R1", "fall", 2, 90, "resident_fine")
        await _alert(conn, "R1", "sos", 3, 200, "taken_to_hospital", dispatched=True)
        await _alert(conn, "R1", "fall", 1, None, at=T0 + timedelta(hours=1))
        await _alert(conn, "R1", "fall", None, None, "resident_fine")  # cancelled in the window: not counted
        await _alert(conn, "R1", "sos", 1, 5, at=T0 - timedelta(days=2))  # before the period
        await _alert(conn, "R2", "sos", 4, 50)


async def test_figures_per_community(world, db_url):
    await _scene(world, db_url)
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        report = await sla_report(conn, T0 - timedelta(hours=1), T0 + timedelta(days=1))
    lianhua, shekou = report
    assert (lianhua.community, lianhua.alerts, shekou.community, shekou.alerts) == (
        "sz/futian/lianhua", 5, "sz/nanshan/shekou", 1)
    assert lianhua.first_notification_p50_s == 1.5 and lianhua.first_notification_p95_s == 2.85
    assert lianhua.acknowledgement_p50_s == 90 and lianhua.acknowledgement_p95_s == 189
    assert lianhua.acknowledged_within_60s == 0.25 and lianhua.acknowledged_within_180s == 0.5
    assert lianhua.meets_60s_target is False and shekou.meets_60s_target is True
    assert lianhua.unacknowledged == 1 and lianhua.dispatched == 1
    assert lianhua.false_alarms_by_type["sos"].rate == 0.5
    assert lianhua.false_alarms_by_type["fall"].false_alarms == 0


async def test_community_and_scope_filters(world, db_url):
    await _scene(world, db_url)
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        district = await sla_report(conn, T0 - timedelta(hours=1), T0 + timedelta(days=1), "sz/nanshan")
        scoped = await sla_report(conn, T0 - timedelta(hours=1), T0 + timedelta(days=1),
                                  scope=("a.region_path LIKE 'sz/futian/%%'", {}))
    assert [s.community for s in district] == ["sz/nanshan/shekou"]
    assert [s.community for s in scoped] == ["sz/futian/lianhua"]


async def test_report_command(world, db_url, monkeypatch, capsys):
    from alerts.__main__ import main

    await _scene(world, db_url)
    monkeypatch.setenv("ELDERCARE_DB_URL", db_url)
    args = ["report", "--since", "2030-03-01", "--until", "2030-03-02", "--community", "sz/futian/lianhua"]
    assert await asyncio.to_thread(main, args) == 0  # main runs its own event loop
    table = capsys.readouterr().out
    assert "sz/futian/lianhua" in table and "25.0%" in table and "shekou" not in table
    assert await asyncio.to_thread(main, [*args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["acknowledged_within_180s"] == 0.5
    monkeypatch.setenv("ELDERCARE_DB_URL", "mysql://x")
    assert await asyncio.to_thread(main, ["report", "--since", "2030-03-01"]) == 2
    assert "ELDERCARE_DB_URL" in capsys.readouterr().err

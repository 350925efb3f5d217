"""The hourly series read from the continuous aggregates equal those computed from the raw rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from hub.storage import capabilities, policies
from hub.storage.rollups import ACTIVITY, VITALS, Source


def _history(url: str) -> None:
    """Ten days of events and readings for R1 (and noise from R2), counted back from now.

    Counted back, so the current hour and day always hold rows whatever the clock says: counted forward from
    ten days ago, a run in the first minutes after midnight UTC found today's day bucket empty.
    """
    now = datetime.now(UTC)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO device_events (ts, device_id, resident_id, kind, msg_id, data)"
            " SELECT %(e)s - make_interval(mins => i * 17), 'M' || (i %% 2), 'R' || (1 + i %% 2),"
            "  (ARRAY['motion', 'door', 'bed', 'battery'])[1 + i %% 4], 'm' || i,"
            "  CASE WHEN i %% 3 = 0 THEN '{\"motion\": false}' ELSE '{\"motion\": true}' END::jsonb"
            " FROM generate_series(0, (10 * 24 * 60) / 17) i", {"e": now})
        conn.execute(
            "INSERT INTO readings (ts, device_id, resident_id, metric, value)"
            " SELECT %(e)s - make_interval(mins => i * 7), 'W1', 'R' || (1 + i %% 2),"
            "  (ARRAY['heart_rate', 'spo2'])[1 + (i / 2) %% 2], 50 + (i * 37) %% 50"
            " FROM generate_series(0, (10 * 24 * 60) / 7) i", {"e": now})


def _read(url: str, sql: str, params: dict[str, object]) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(sql, params).fetchall()
    return [tuple(round(v, 6) if isinstance(v, float) else v for v in row) for row in rows]


def _all_queries(source: Source, url: str) -> dict[str, list[tuple[object, ...]]]:
    span = {"rid": "R1", "span": timedelta(days=7), "metric": "heart_rate"}
    out = {}
    for bucket in ("hour", "day"):
        out[f"activity/{bucket}"] = _read(url, source.activity_sql(bucket), span)  # type: ignore[arg-type]
        out[f"vitals/{bucket}"] = _read(url, source.vitals_sql(bucket, False), span)  # type: ignore[arg-type]
        out[f"vitals/{bucket}/one"] = _read(url, source.vitals_sql(bucket, True), span)  # type: ignore[arg-type]
    out["baseline"] = _read(url, source.hourly_activity_sql() + " ORDER BY 1, 2",
                            {"rids": ["R1", "R2"], "since": datetime.now(UTC) - timedelta(days=8)})
    return out


def test_aggregates_answer_like_the_raw_tables_before_and_after_a_refresh(community):
    url = community.fresh_db()
    policies.ensure(url, policies.Plan())
    _history(url)
    raw = _all_queries(Source(timescaledb=True), url)
    assert len(raw["activity/hour"]) > 7 * 24 and len({row[0] for row in raw["vitals/day"]}) == 8  # 8 whole days
    aggregated = Source(timescaledb=True, aggregates=frozenset({ACTIVITY, VITALS}))
    assert _all_queries(aggregated, url) == raw  # real-time: nothing materialised yet
    with psycopg.connect(url, autocommit=True) as conn:
        for view in (ACTIVITY, VITALS):
            conn.execute(f"CALL refresh_continuous_aggregate('{view}', NULL, now() - interval '1 hour')")
        watermark = conn.execute(
            "SELECT _timescaledb_functions.to_timestamp(_timescaledb_functions.cagg_watermark(mat_hypertable_id))"
            " FROM _timescaledb_catalog.continuous_agg WHERE user_view_name = %s", (ACTIVITY,)).fetchone()
    assert watermark is not None and watermark[0] > datetime.now(UTC) - timedelta(hours=3)
    assert _all_queries(aggregated, url) == raw  # materialised hours plus the raw current hour


@pytest.mark.anyio
async def test_history_reads_the_aggregates_only_where_the_server_has_them(edition):
    url = edition.fresh_db()
    policies.ensure(url, policies.Plan())
    async with await psycopg.AsyncConnection.connect(url) as conn:
        caps = await capabilities.detect(conn)
    sql = caps.rollups.activity_sql("hour") + caps.rollups.vitals_sql("day", True)
    if edition.license == "timescale":
        assert ACTIVITY in sql and VITALS in sql
    else:
        assert "FROM device_events" in sql and "FROM readings" in sql


def test_plain_postgresql_buckets_in_utc_like_time_bucket():
    sql = Source(timescaledb=False).activity_sql("day")
    assert "date_trunc('day', ts, 'UTC')" in sql

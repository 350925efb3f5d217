"""Compression, retention and refresh jobs: created on the Community edition, reconciled, and really run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from hub.storage import capabilities, policies, rollups


async def _caps(url: str) -> capabilities.Capabilities:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        return await capabilities.detect(conn)


def _pause_jobs(url: str) -> None:
    """The tests run the jobs themselves: the scheduler running one at the same time would race them."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs"
                     " WHERE job_id >= 1000")


def _job(conn: psycopg.Connection, proc: str, relation: str) -> int:
    row = conn.execute(
        "SELECT j.job_id FROM timescaledb_information.jobs j LEFT JOIN timescaledb_information.continuous_aggregates c"
        " ON c.materialization_hypertable_name = j.hypertable_name"
        " WHERE j.proc_name = %s AND coalesce(c.view_name, j.hypertable_name) = %s", (proc, relation)).fetchone()
    assert row is not None, f"no {proc} job on {relation}"
    return int(row[0])


@pytest.mark.anyio
async def test_community_gets_compression_retention_and_real_time_aggregates(community):
    url = community.fresh_db()
    changes = policies.ensure(url, policies.Plan())
    assert "continuous aggregate activity_hourly created" in changes
    caps = await _caps(url)
    shown = caps.as_dict()
    assert shown["edition"] == "community"
    assert shown["compression"] == {
        "tables": ["activity_hourly", "device_events", "imu_batches", "readings", "vitals_hourly"],
        "policies": {"activity_hourly": "2 days", "device_events": "2 days", "imu_batches": "02:00:00",
                     "readings": "2 days", "vitals_hourly": "2 days"}}
    assert shown["retention"] == {"mode": "policy", "policies": {
        "activity_hourly": "90 days", "device_events": "90 days", "imu_batches": "1 day", "readings": "90 days",
        "vitals_hourly": "90 days"}}
    assert shown["continuous_aggregates"]["activity_hourly"] == {
        "source": "device_events", "real_time": True,
        "refresh": {"every": "00:30:00", "start_offset": "89 days", "end_offset": "01:00:00"}}
    assert caps.rollups.aggregates == {rollups.ACTIVITY, rollups.VITALS}


@pytest.mark.anyio
async def test_a_second_start_changes_nothing_and_a_new_setting_replaces_the_job(community):
    url = community.fresh_db()
    policies.ensure(url, policies.Plan())
    assert policies.ensure(url, policies.Plan()) == []
    changed = policies.ensure(url, policies.Plan(telemetry_compress_after=timedelta(days=5),
                                                 telemetry_keep=timedelta(days=30)))
    assert "policy_compression on readings: compress_after 5 days" in changed
    assert not any("imu_batches" in c and "compression" in c for c in changed)  # unchanged jobs stay
    caps = await _caps(url)
    assert caps.compression_jobs["readings"] == "5 days"
    assert caps.retention_jobs["device_events"] == "30 days"
    assert caps.aggregates["vitals_hourly"]["refresh"]["start_offset"] == "29 days"
    with psycopg.connect(url) as conn:
        n = conn.execute("SELECT count(*) FROM timescaledb_information.jobs"
                         " WHERE proc_name = 'policy_compression'").fetchone()
    assert n == (5,)


@pytest.mark.anyio
async def test_apache_edition_keeps_the_fallbacks(apache):
    url = apache.fresh_db()
    assert policies.ensure(url, policies.Plan()) == []
    caps = await _caps(url)
    assert caps.as_dict()["edition"] == "apache"
    assert caps.as_dict()["retention"] == {"mode": "drop_chunks", "policies": {}}
    assert caps.aggregates == {} and caps.compressed_tables == ()
    assert caps.rollups.aggregates == frozenset()


def test_compression_job_compresses_old_chunks_and_late_redeliveries_stay_idempotent(community):
    url = community.fresh_db()
    policies.ensure(url, policies.Plan())
    _pause_jobs(url)
    old = datetime.now(UTC) - timedelta(days=5)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO readings (ts, device_id, resident_id, metric, value)"
            " SELECT %s + make_interval(secs => i * 30), 'W1', 'R1', 'heart_rate', 60 + i %% 20"
            " FROM generate_series(0, 999) i", (old,))
        conn.execute(
            "INSERT INTO device_events (ts, device_id, resident_id, kind, msg_id)"
            " SELECT %s + make_interval(secs => i * 60), 'M1', 'R1', 'motion', 'm' || i"
            " FROM generate_series(0, 199) i", (old,))
        for table in ("readings", "device_events"):
            conn.execute("CALL run_job(%s)", (_job(conn, "policy_compression", table),))
        compressed = conn.execute(
            "SELECT hypertable_name, bool_and(is_compressed) FROM timescaledb_information.chunks"
            " WHERE hypertable_name IN ('readings', 'device_events') AND range_end < now() - interval '2 days'"
            " GROUP BY 1 ORDER BY 1").fetchall()
        assert compressed == [("device_events", True), ("readings", True)]
        assert conn.execute("SELECT count(*), min(value), max(value) FROM readings").fetchone() == (1000, 60, 79)
        # A message redelivered days later lands in a compressed chunk: still a no-op, as the writer expects.
        again = conn.execute(
            "INSERT INTO device_events (ts, device_id, resident_id, kind, msg_id) VALUES (%s, 'M1', 'R1', 'motion',"
            " 'm0') ON CONFLICT DO NOTHING RETURNING msg_id", (old,)).fetchall()
        assert again == []
        assert conn.execute("SELECT count(*) FROM device_events").fetchone() == (200,)


def test_retention_job_drops_chunks_past_their_age(community):
    url = community.fresh_db()
    policies.ensure(url, policies.Plan(telemetry_keep=timedelta(days=10)))
    _pause_jobs(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO readings (ts, device_id, resident_id, metric, value) VALUES"
                     " (now() - interval '20 days', 'W1', 'R1', 'hr', 1),"
                     " (now() - interval '1 day', 'W1', 'R1', 'hr', 2)")
        conn.execute("CALL run_job(%s)", (_job(conn, "policy_retention", "readings"),))
        assert conn.execute("SELECT value FROM readings").fetchall() == [(2.0,)]

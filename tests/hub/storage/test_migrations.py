"""Migrations: applied once, recorded, idempotent; TimescaleDB detected; plain PostgreSQL still works."""

from __future__ import annotations

import logging

import psycopg
import pytest

from hub.embedded import PostgresInstance, free_port
from hub.storage import capabilities
from hub.storage.migrations import available, migrate


def test_second_run_applies_nothing(db_url):
    assert migrate(db_url) == []
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
    assert [(m.version, m.name) for m in available()] == rows


def test_time_tables_are_hypertables(db_url):
    with psycopg.connect(db_url) as conn:
        names = {r[0] for r in conn.execute("SELECT hypertable_name FROM timescaledb_information.hypertables")}
    assert {"readings", "device_events", "imu_batches"} <= names


@pytest.mark.anyio
async def test_capabilities_report_version_and_edition(db_url):
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        caps = await capabilities.detect(conn)
    assert caps.timescaledb_version and caps.timescaledb_version.startswith("2.")
    assert caps.license in {"apache", "timescale"}
    shown = caps.as_dict()
    assert shown["edition"] == ("community" if caps.license == "timescale" else "apache")
    # Nothing is assumed from the edition: migrations alone create no jobs or aggregates.
    assert shown["compression"]["policies"] == {} and shown["continuous_aggregates"] == {}
    assert shown["retention"]["mode"] == "drop_chunks"


def test_edited_migration_is_refused(db_url, monkeypatch):
    from hub.storage import migrations

    real = migrations.available()
    edited = [migrations.Migration(m.version, m.name, m.sql + "\n-- edited") for m in real]
    monkeypatch.setattr(migrations, "available", lambda: edited)
    with pytest.raises(migrations.StorageError, match="changed after it was applied"):
        migrate(db_url)


def test_plain_postgresql_works_with_a_warning(service_tmp, caplog):
    pg = PostgresInstance(service_tmp / "plain", free_port(), timescaledb=False)
    pg.start()
    try:
        with caplog.at_level(logging.WARNING):
            assert migrate(pg.url)
        assert "TimescaleDB is not available" in caplog.text
        with psycopg.connect(pg.url) as conn:
            ext = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
            idx = conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'readings'").fetchall()
        assert ext is None
        assert ("readings_time_idx",) in idx
    finally:
        pg.stop()

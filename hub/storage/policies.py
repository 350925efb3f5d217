"""Compression, retention and refresh jobs on the Community edition, reconciled with the settings at start-up."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from hub.storage import rollups
from hub.storage.errors import StorageError

log = logging.getLogger(__name__)

_LOCK_KEY = 0x454C4450  # "ELDP": one worker reconciles jobs at a time

# segmentby: the column history and detection filter on, so a compressed chunk is read one resident
# (or device) at a time; orderby: the order rows are read in within a segment.
COMPRESSION = {
    "readings": ("resident_id", "metric, ts DESC"),
    "device_events": ("resident_id", "ts DESC"),
    "imu_batches": ("device_id", "ts DESC"),
}
# The aggregates too, one resident's hours per segment: uncompressed, those hours lie on as many pages as
# rows, and a 30-day history read them all (docs/performance.md). A refresh over compressed hours works.
AGGREGATE_COMPRESSION = {
    rollups.ACTIVITY: ("resident_id", "bucket DESC, kind"),
    rollups.VITALS: ("resident_id", "bucket DESC, metric"),
}
# The aggregates are refreshed every half hour; the hour still being written is served from raw rows.
REFRESH_EVERY = timedelta(minutes=30)
REFRESH_END = timedelta(hours=1)


@dataclass(frozen=True)
class Plan:
    """How long each kind of data is kept, and when its chunks are compressed."""

    telemetry_keep: timedelta = timedelta(days=90)
    imu_keep: timedelta = timedelta(hours=24)
    telemetry_compress_after: timedelta = timedelta(days=2)
    imu_compress_after: timedelta = timedelta(hours=2)
    dead_letters_keep: timedelta = timedelta(days=30)
    feed_keep: timedelta = timedelta(days=7)

    @classmethod
    def from_settings(cls, settings: Any) -> Plan:
        """The plan the settings ask for."""
        return cls(
            telemetry_keep=timedelta(days=settings.retention_days_telemetry),
            imu_keep=timedelta(hours=settings.retention_hours_imu),
            telemetry_compress_after=timedelta(days=settings.compress_after_days_telemetry),
            imu_compress_after=timedelta(hours=settings.compress_after_hours_imu),
            dead_letters_keep=timedelta(days=settings.retention_days_dead_letters),
            feed_keep=timedelta(days=settings.retention_days_feed),
        )

    def keep(self) -> dict[str, timedelta]:
        """Retention per hypertable and per continuous aggregate."""
        return {"readings": self.telemetry_keep, "device_events": self.telemetry_keep, "imu_batches": self.imu_keep,
                rollups.ACTIVITY: self.telemetry_keep, rollups.VITALS: self.telemetry_keep}

    def compress_after(self) -> dict[str, timedelta]:
        """Age after which each hypertable's and aggregate's chunks are compressed."""
        return {"readings": self.telemetry_compress_after, "device_events": self.telemetry_compress_after,
                "imu_batches": self.imu_compress_after, rollups.ACTIVITY: self.telemetry_compress_after,
                rollups.VITALS: self.telemetry_compress_after}

    def refresh_start(self) -> timedelta:
        """How far back each refresh looks: the whole kept history minus a day.

        A refresh over hours whose raw chunks were already dropped would empty those hours of the
        aggregate, so the window stays inside the raw data's retention. Within it, a refresh touches only
        hours changed since the last one (late messages).
        """
        return max(self.telemetry_keep - timedelta(days=1), REFRESH_END + timedelta(hours=2))


def ensure(url: str, plan: Plan) -> list[str]:
    """On the Community edition, create what the plan needs and bring job settings in line; returns changes."""
    with psycopg.connect(url, autocommit=True) as conn:
        lic = conn.execute("SELECT current_setting('timescaledb.license', true)").fetchone()
        if lic is None or lic[0] != "timescale":
            return []
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            return _ensure(conn, plan)
        except psycopg.Error as err:
            raise StorageError(f"setting up compression, retention and aggregates failed: {err}") from err
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))


def _ensure(conn: psycopg.Connection[Any], plan: Plan) -> list[str]:
    changes: list[str] = []
    enabled = {r[0] for r in conn.execute(
        "SELECT hypertable_name FROM timescaledb_information.hypertables WHERE compression_enabled")}
    for table, (segment_by, order_by) in COMPRESSION.items():
        if table not in enabled:
            conn.execute(f"ALTER TABLE {table} SET (timescaledb.compress, timescaledb.compress_segmentby ="
                         f" '{segment_by}', timescaledb.compress_orderby = '{order_by}')")
            changes.append(f"compression enabled on {table}")
    caggs = {r[0]: (r[1], r[2]) for r in conn.execute(
        "SELECT view_name, materialized_only, compression_enabled FROM timescaledb_information.continuous_aggregates")}
    for view in rollups.DEFINITIONS:
        if view not in caggs:
            conn.execute(rollups.create_sql(view))
            changes.append(f"continuous aggregate {view} created")
        elif caggs[view][0]:
            conn.execute(f"ALTER MATERIALIZED VIEW {view} SET (timescaledb.materialized_only = false)")
            changes.append(f"real-time aggregation switched on for {view}")
        if view not in caggs or not caggs[view][1]:
            segment_by, order_by = AGGREGATE_COMPRESSION[view]
            conn.execute(f"ALTER MATERIALIZED VIEW {view} SET (timescaledb.compress = true, timescaledb."
                         f"compress_segmentby = '{segment_by}', timescaledb.compress_orderby = '{order_by}')")
            changes.append(f"compression enabled on {view}")
    # An aggregate's compression job needs its refresh job first.
    for view in rollups.DEFINITIONS:
        changes += _job(conn, "policy_refresh_continuous_aggregate", view,
                        {"start_offset": plan.refresh_start(), "end_offset": REFRESH_END},
                        "SELECT add_continuous_aggregate_policy(%(t)s::regclass, start_offset => %(start_offset)s,"
                        " end_offset => %(end_offset)s, schedule_interval => %(every)s)",
                        "SELECT remove_continuous_aggregate_policy(%(t)s::regclass)")
    for table, after in plan.compress_after().items():
        changes += _job(conn, "policy_compression", table, {"compress_after": after},
                        "SELECT add_compression_policy(%(t)s::regclass, compress_after => %(compress_after)s)",
                        "SELECT remove_compression_policy(%(t)s::regclass)")
    for relation, keep in plan.keep().items():
        changes += _job(conn, "policy_retention", relation, {"drop_after": keep},
                        "SELECT add_retention_policy(%(t)s::regclass, drop_after => %(drop_after)s)",
                        "SELECT remove_retention_policy(%(t)s::regclass)")
    for change in changes:
        log.info("storage: %s", change)
    return changes


def _job(conn: psycopg.Connection[Any], proc: str, relation: str, want: dict[str, timedelta],
         add: str, remove: str) -> list[str]:
    """Add a policy job, or replace it when its configuration differs from `want`."""
    rows = conn.execute(
        "SELECT j.config FROM timescaledb_information.jobs j"
        " LEFT JOIN timescaledb_information.continuous_aggregates c"
        "   ON c.materialization_hypertable_schema = j.hypertable_schema"
        "  AND c.materialization_hypertable_name = j.hypertable_name"
        " WHERE j.proc_name = %s AND coalesce(c.view_name, j.hypertable_name) = %s", (proc, relation)).fetchall()
    params: dict[str, Any] = {"t": relation, "every": REFRESH_EVERY, **want}
    if rows:
        config = rows[0][0]
        same = conn.execute(
            "SELECT bool_and((%s::jsonb ->> key)::interval = value) FROM unnest(%s::text[], %s::interval[])"
            " AS w(key, value)", (Jsonb(config), list(want), list(want.values()))).fetchone()
        if same and same[0]:
            return []
        conn.execute(remove, params)
    conn.execute(add, params)
    return [f"{proc} on {relation}: " + ", ".join(f"{k} {_human(v)}" for k, v in want.items())]


def _human(age: timedelta) -> str:
    return f"{age.days} days" if age.days and not age.seconds else f"{age.total_seconds() / 3600:g} hours"

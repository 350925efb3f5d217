"""What the database server offers and what it actually runs: edition, compression, retention jobs, aggregates.

Everything but the version and licence is read back from the server (timescaledb_information.*), never
inferred from the edition: /health and the history API report and use what exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

from hub.storage import rollups

HYPERTABLES = ("readings", "device_events", "imu_batches")


@dataclass(frozen=True)
class Capabilities:
    """TimescaleDB presence and edition, and the compression, retention and aggregates found on the server."""

    timescaledb_version: str | None
    license: str | None
    compressed_tables: tuple[str, ...] = ()
    compression_jobs: dict[str, str] = field(default_factory=dict)  # hypertable → compress_after
    retention_jobs: dict[str, str] = field(default_factory=dict)  # hypertable or aggregate → drop_after
    aggregates: dict[str, dict[str, Any]] = field(default_factory=dict)  # view → source, real_time, refresh
    read_at: str = ""

    @property
    def timescaledb(self) -> bool:
        """True when tables are hypertables."""
        return self.timescaledb_version is not None

    @property
    def community(self) -> bool:
        """Compression, continuous aggregates and policy jobs need the Community ('timescale') licence."""
        return self.license == "timescale"

    @property
    def realtime_aggregates(self) -> frozenset[str]:
        """The continuous aggregates that include not-yet-materialised rows (safe to read instead of raw)."""
        return frozenset(v for v, a in self.aggregates.items() if a["real_time"])

    @property
    def rollups(self) -> rollups.Source:
        """Where the history API and baselines read the hourly series from."""
        return rollups.Source(self.timescaledb, self.realtime_aggregates)

    @property
    def retention_mode(self) -> str:
        """'policy' when the server's jobs bound every time table, else how the hub does it itself."""
        if all(t in self.retention_jobs for t in HYPERTABLES):
            return "policy"
        return "drop_chunks" if self.timescaledb else "delete"

    def as_dict(self) -> dict[str, Any]:
        """JSON shape for /health."""
        edition = None if not self.timescaledb else ("community" if self.community else "apache")
        return {
            "timescaledb_version": self.timescaledb_version,
            "license": self.license,
            "edition": edition,
            "compression": {"tables": list(self.compressed_tables), "policies": dict(self.compression_jobs)},
            "retention": {"mode": self.retention_mode, "policies": dict(self.retention_jobs)},
            "continuous_aggregates": dict(self.aggregates),
            "read_at": self.read_at,
        }


async def detect(conn: psycopg.AsyncConnection[Any]) -> Capabilities:
    """Ask the server what it offers and which jobs and aggregates exist in this database."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    row = await (await conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")).fetchone()
    if row is None:
        return Capabilities(None, None, read_at=now)
    lic = await (await conn.execute("SELECT current_setting('timescaledb.license', true)")).fetchone()
    compressed = tuple(r[0] for r in await (await conn.execute(
        "SELECT hypertable_name FROM timescaledb_information.hypertables WHERE compression_enabled UNION"
        " SELECT view_name FROM timescaledb_information.continuous_aggregates WHERE compression_enabled"
        " ORDER BY 1")).fetchall())
    jobs = await (await conn.execute(
        "SELECT j.proc_name, coalesce(c.view_name, j.hypertable_name), j.config, j.schedule_interval::text"
        " FROM timescaledb_information.jobs j"
        " LEFT JOIN timescaledb_information.continuous_aggregates c"
        "   ON c.materialization_hypertable_schema = j.hypertable_schema"
        "  AND c.materialization_hypertable_name = j.hypertable_name"
        " WHERE j.proc_name IN ('policy_compression', 'policy_retention', 'policy_refresh_continuous_aggregate')"
        " AND j.scheduled ORDER BY 2, 1")).fetchall()
    compression = {rel: cfg["compress_after"] for proc, rel, cfg, _ in jobs if proc == "policy_compression"}
    retention = {rel: cfg["drop_after"] for proc, rel, cfg, _ in jobs if proc == "policy_retention"}
    refresh = {rel: {"every": every, "start_offset": cfg.get("start_offset"), "end_offset": cfg.get("end_offset")}
               for proc, rel, cfg, every in jobs if proc == "policy_refresh_continuous_aggregate"}
    aggregates = {
        view: {"source": source, "real_time": not materialized_only, "refresh": refresh.get(view)}
        for view, source, materialized_only in await (await conn.execute(
            "SELECT view_name, hypertable_name, materialized_only FROM timescaledb_information.continuous_aggregates"
            " ORDER BY 1")).fetchall()
    }
    return Capabilities(row[0], lic[0] if lic else None, compressed, compression, retention, aggregates, now)

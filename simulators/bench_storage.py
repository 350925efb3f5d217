"""`python -m simulators.bench storage`: disk, write rate and history-query latency per TimescaleDB edition.

Each edition gets its own private cluster (one Community build serves both, chosen with
`timescaledb.license`), the hub's migrations and the storage set-up the hub runs at start-up
(hub/storage/policies.py). The jobs are then paused so that compression and the aggregates' refresh
run when the benchmark says and are timed. N days of a household mix for M households are written
server-side (INSERT ... SELECT, the same statements on every edition), a day per step.

The mix per household and day, from the fleet simulator's defaults (simulators/wristband.py and the
routine's PIR re-trigger period): a wristband heartbeat every 300 s (battery and signal readings), a
position every 600 s (a location event), vitals every 1800 s (a vitals event plus heart-rate and SpO2
readings); four motion sensors reporting every ~240 s between 07:00 and 22:00 local time (80% of the
slots); 12 door and 4 bed events. That is about 676 messages and 1,060 rows per household-day; no IMU
batches (kept 24 h only, and random samples do not compress).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from hub.embedded import PostgresInstance, free_port
from hub.embedded.timescale_build import build, default_tree, ready, tree_bin
from hub.storage import policies
from hub.storage.migrations import migrate
from hub.storage.rollups import ACTIVITY, VITALS, Source

# Messages per household-day of the mix above (for bytes per stored message).
_MSG_PER_DAY = {"heartbeat": 288, "location": 144, "vitals": 48, "motion": 0, "door": 12, "bed": 4}

_READINGS = """
INSERT INTO readings (ts, device_id, resident_id, metric, value)
SELECT t, 'WB' || h, 'R' || h, m.metric,
       CASE m.metric WHEN 'battery' THEN 100 - extract(hour FROM t) * 2 - (h %% 7)
                     WHEN 'signal' THEN -95 + ((h * 31 + extract(epoch FROM t)::bigint / 300) %% 36)
                     WHEN 'heart_rate' THEN 62 + ((h * 17 + extract(epoch FROM t)::bigint / 1800) %% 24)
                     ELSE 94 + ((h + extract(epoch FROM t)::bigint / 1800) %% 6) END
FROM generate_series(1, %(households)s) h,
     LATERAL (SELECT generate_series(%(day)s + make_interval(secs => h %% 300),
                                     %(day)s + interval '1 day' - interval '1 s', interval '300 s') AS t) s,
     LATERAL (VALUES ('battery'), ('signal'), ('heart_rate'), ('spo2')) m(metric)
WHERE m.metric IN ('battery', 'signal') OR extract(epoch FROM t)::bigint %% 1800 < 300
"""

_EVENTS = """
INSERT INTO device_events (ts, device_id, resident_id, household_id, kind, msg_id, room, data, received_at)
SELECT t, dev, 'R' || h, 'H' || h, kind, kind || extract(epoch FROM t)::bigint, room, data, t + interval '200 ms'
FROM (
  SELECT h, t, 'WB' || h AS dev, 'location' AS kind, NULL AS room,
         jsonb_build_object('lat', 22.5 + h * 1e-4, 'lon', 114.0 + h * 1e-4, 'acc_m', 10, 'src', 'gnss') AS data
  FROM generate_series(1, %(households)s) h,
       generate_series(%(day)s + make_interval(secs => h %% 600), %(day)s + interval '1 day' - interval '1 s',
                       interval '600 s') t
  UNION ALL
  SELECT h, t, 'WB' || h, 'vitals', NULL,
         jsonb_build_object('heart_rate', 62 + (h * 17 + extract(epoch FROM t)::bigint / 1800) %% 24,
                            'spo2', 94 + (h + extract(epoch FROM t)::bigint / 1800) %% 6)
  FROM generate_series(1, %(households)s) h,
       generate_series(%(day)s + make_interval(secs => h %% 1800), %(day)s + interval '1 day' - interval '1 s',
                       interval '1800 s') t
  UNION ALL
  SELECT h, t, 'MO' || h || '-' || r, 'motion', (ARRAY['living_room', 'kitchen', 'bathroom', 'bedroom'])[r],
         '{"motion": true}'::jsonb
  FROM generate_series(1, %(households)s) h,
       generate_series(%(day)s + make_interval(secs => h %% 240), %(day)s + interval '1 day' - interval '1 s',
                       interval '240 s') t,
       LATERAL (SELECT 1 + (h + extract(epoch FROM t)::bigint / 1200) %% 4 AS r) room
  -- 07:00-22:00 in China Standard Time is 23:00-14:00 UTC; four in five re-trigger slots.
  WHERE (extract(hour FROM t AT TIME ZONE 'UTC') >= 23 OR extract(hour FROM t AT TIME ZONE 'UTC') < 14)
    AND hashint8(h * 100003 + extract(epoch FROM t)::bigint) %% 5 <> 0
  UNION ALL
  SELECT h, %(day)s + make_interval(secs => (h * 7919 + k * 3571) %% 86400), 'DR' || h, 'door', 'entrance',
         jsonb_build_object('contact', k %% 2 = 0)
  FROM generate_series(1, %(households)s) h, generate_series(1, 12) k
  UNION ALL
  SELECT h, %(day)s + make_interval(secs => (h * 104729 + k * 21601) %% 86400), 'BD' || h, 'bed', 'bedroom',
         jsonb_build_object('occupied', k %% 2 = 1)
  FROM generate_series(1, %(households)s) h, generate_series(1, 4) k
) e
ON CONFLICT DO NOTHING
"""


def progress(label: str, done: int, total: int) -> None:
    """A one-line progress bar on stderr."""
    width = 30
    filled = width * done // max(total, 1)
    sys.stderr.write(f"\r{label:<24} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50_ms": round(statistics.median(ordered) * 1000, 2), "p95_ms": round(p95 * 1000, 2), "n": len(ordered)}


def _sizes(conn: psycopg.Connection[Any], timescaledb: bool) -> dict[str, int]:
    out = {}
    for table in ("readings", "device_events"):
        sql = "SELECT hypertable_size(%s::regclass)" if timescaledb else "SELECT pg_total_relation_size(%s::regclass)"
        row = conn.execute(sql, (table,)).fetchone()
        out[table] = int(row[0]) if row and row[0] is not None else 0
    return out


def _time_queries(url: str, source: Source, households: int, repeats: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    rids = [f"R{rng.randint(1, households)}" for _ in range(repeats)]
    out = {}
    with psycopg.connect(url) as conn:
        for name, sql, days in (("activity_hourly_30d", source.activity_sql("hour"), 30),
                                ("vitals_hourly_7d", source.vitals_sql("hour", False), 7)):
            conn.execute(sql, {"rid": rids[0], "span": timedelta(days=days)}).fetchall()  # warm the plan cache
            samples = []
            for rid in rids:
                t0 = time.perf_counter()
                rows = conn.execute(sql, {"rid": rid, "span": timedelta(days=days), "metric": None}).fetchall()
                samples.append(time.perf_counter() - t0)
            out[name] = {**_percentiles(samples), "rows_last": len(rows)}
    return out


def run_edition(license: str | None, bin_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Fill one cluster of one edition and measure it."""
    label = license or "system"
    root = Path(tempfile.mkdtemp(prefix=f"eldercare-bench-{label}-"))
    root.chmod(0o755)  # the cluster runs as `postgres` under root
    pg = PostgresInstance(root / "pg", free_port(), bin_dir=bin_dir, license=license)
    pg.start()
    try:
        url = pg.create_database("bench")
        migrate(url)
        plan = policies.Plan(telemetry_compress_after=timedelta(days=args.compress_after_days))
        setup = policies.ensure(url, plan)
        result: dict[str, Any] = {"storage_setup": len(setup)}
        with psycopg.connect(url, autocommit=True) as conn:
            lic = conn.execute("SELECT current_setting('timescaledb.license', true)").fetchone()
            result["license"] = lic[0] if lic else None
            community = bool(lic and lic[0] == "timescale")
            if community:  # run compression and refreshes when we say, and time them
                conn.execute("SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs"
                             " WHERE job_id >= 1000")
            today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            start = today - timedelta(days=args.days - 1)
            rows = 0
            t0 = time.perf_counter()
            for d in range(args.days):
                day = start + timedelta(days=d)
                params = {"households": args.households, "day": day}
                rows += conn.execute(_READINGS, params).rowcount
                rows += conn.execute(_EVENTS, params).rowcount
                progress(f"{label}: writing days", d + 1, args.days)
            elapsed = time.perf_counter() - t0
            conn.execute("ANALYZE readings")
            conn.execute("ANALYZE device_events")
            messages = args.households * args.days * sum(_MSG_PER_DAY.values())
            motion = conn.execute("SELECT count(*) FROM device_events WHERE kind = 'motion'").fetchone()
            messages += int(motion[0]) if motion else 0
            before = _sizes(conn, True)
            result.update({
                "rows_written": rows, "messages": messages, "write_s": round(elapsed, 1),
                "rows_written_per_s": round(rows / elapsed),
                "uncompressed_bytes": before,
                "bytes_per_message_uncompressed": round(sum(before.values()) / messages, 1),
                "disk_per_household_year_uncompressed_mb": round(
                    sum(before.values()) / args.households / args.days * 365 / 1e6, 1),
                "queries_raw": _time_queries(url, Source(timescaledb=True), args.households, args.repeats, args.seed),
            })
            if community:
                result.update(_compress_and_aggregate(conn, url, label, messages, args))
        return result
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


def _compress_and_aggregate(conn: psycopg.Connection[Any], url: str, label: str, messages: int,
                            args: argparse.Namespace) -> dict[str, Any]:
    """Refresh the aggregates and compress old chunks as the paused jobs would; measure again."""
    result: dict[str, Any] = {}
    t0 = time.perf_counter()
    for view in (ACTIVITY, VITALS):
        conn.execute(f"CALL refresh_continuous_aggregate('{view}', NULL, now() - interval '1 hour')")
    result["aggregate_refresh_s"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    chunks = 0
    for table in ("readings", "device_events", ACTIVITY, VITALS):
        old = conn.execute("SELECT show_chunks(%s::regclass, older_than => %s::interval)",
                           (table, timedelta(days=args.compress_after_days))).fetchall()
        for i, (chunk,) in enumerate(old):
            conn.execute("SELECT compress_chunk(%s, if_not_compressed => true)", (chunk,))
            progress(f"{label}: compressing {table}", i + 1, len(old))
        chunks += len(old)
        if table == "device_events":
            chunks_raw = chunks
    result["compress_s"] = round(time.perf_counter() - t0, 1)
    result["chunks_compressed"] = chunks
    conn.execute("VACUUM ANALYZE readings")
    conn.execute("VACUUM ANALYZE device_events")
    after = _sizes(conn, True)
    stats, before_b, after_b = {}, 0, 0
    for table in ("readings", "device_events"):
        row = conn.execute("SELECT sum(before_compression_total_bytes), sum(after_compression_total_bytes)"
                           " FROM chunk_compression_stats(%s::regclass)", (table,)).fetchone()
        if row and row[0]:
            stats[table] = round(int(row[0]) / int(row[1]), 1)
            before_b, after_b = before_b + int(row[0]), after_b + int(row[1])
    compressed_share = max(chunks_raw // 2, 1) / args.days  # one-day chunks, two tables
    aggregates = conn.execute(
        "SELECT coalesce(sum(hypertable_size(format('%I.%I', materialization_hypertable_schema,"
        " materialization_hypertable_name)::regclass)), 0) FROM timescaledb_information.continuous_aggregates"
    ).fetchone()
    result.update({
        "compressed_bytes": after,
        "compression_ratio_of_compressed_chunks": stats,
        # Per message of the compressed days only (the last compress_after_days stay uncompressed).
        "bytes_per_message_in_compressed_chunks_before": round(before_b / (messages * compressed_share), 1),
        "bytes_per_message_in_compressed_chunks_after": round(after_b / (messages * compressed_share), 1),
        "disk_per_household_year_compressed_mb": round(
            after_b / compressed_share / args.households / args.days * 365 / 1e6, 1),
        "aggregate_bytes": int(aggregates[0]) if aggregates else 0,
        "queries_raw_compressed": _time_queries(url, Source(timescaledb=True), args.households,
                                                args.repeats, args.seed),
        "queries_aggregate": _time_queries(url, Source(True, frozenset({ACTIVITY, VITALS})),
                                           args.households, args.repeats, args.seed),
    })
    return result


def community_bin(source: Path | None) -> Path | None:
    """The Community build's bin folder, built from `source` if it is not cached yet; None without either."""
    tree = default_tree()
    if ready(tree):
        return tree_bin(tree)
    if source is None or not source.is_file():
        return None
    sys.stderr.write(f"building TimescaleDB from {source} into {tree} (once)\n")
    return build(source, tree)


def storage(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark for each requested edition; one JSON-able dict."""
    source = args.source or (Path(os.environ["ELDERCARE_TIMESCALEDB_SRC"])
                             if os.environ.get("ELDERCARE_TIMESCALEDB_SRC") else None)
    bin_dir = community_bin(source)
    editions: dict[str, Any] = {}
    for edition in args.editions.split(","):
        if bin_dir is None:
            editions[edition] = {"skipped": "no Community build: pass --source with the TimescaleDB 2.19.3 source"}
            continue
        editions[edition] = run_edition(edition, bin_dir, args)
    return {
        "benchmark": "storage",
        "households": args.households, "days": args.days, "compress_after_days": args.compress_after_days,
        "query_repeats": args.repeats,
        "mix_per_household_day": {**_MSG_PER_DAY, "motion": "~240 s slots 07:00-22:00 local, 80% used"},
        "editions": editions,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
    }


def add_parser(sub: Any) -> None:
    """The `storage` subcommand's options."""
    p = sub.add_parser("storage", help="disk per message, write rate and history-query latency per edition")
    p.add_argument("--days", type=int, default=30, help="days of history written")
    p.add_argument("--households", type=int, default=100, help="households (one resident each)")
    p.add_argument("--editions", default="timescale,apache", help="timescaledb.license values, comma-separated")
    p.add_argument("--compress-after-days", type=int, default=2)
    p.add_argument("--repeats", type=int, default=100, help="runs of each history query (random residents)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--source", type=Path, help="TimescaleDB 2.19.3 source tarball, when the build is not cached")
    p.add_argument("--json", action="store_true", help="print only the JSON object (compact)")

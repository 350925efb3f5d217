"""`python -m simulators.bench import`: a roster of N elders (contacts and a wristband each) imported from CSV.

A private PostgreSQL+TimescaleDB is started, the region tree is seeded, a roster file is written, then
`hub.imports.job.run_import` (the code behind `python -m hub import` and `POST /api/imports`) runs twice:
the first run creates everything (devices through devices.provisioning, broker accounts in a password
file), the second must change nothing. Wall time, rows per second and the process's peak memory are
printed as JSON. Memory is read from /proc/self/status (VmHWM) after generating the file, so the figure
is the import's own peak.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import platform
import sys
import time
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any

import psycopg

from devices.credentials import CredentialStore
from hub.imports.columns import COLUMNS
from hub.imports.job import create_job, run_import
from hub.storage.migrations import migrate
from simulators.bench import private_postgres

COMMUNITIES = 40


def _rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    # Writing "5" to clear_refs resets VmHWM (Linux ≥ 4.0), so the peak measured is the import's.
    with suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def write_roster(path: Path, elders: int) -> None:
    """A roster in the template's English headers: one household per elder, two contacts, one wristband."""
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow([c.en for c in COLUMNS])
        for i in range(elders):
            c = i % COMMUNITIES
            cells = {
                "resident_id": f"R{i:07d}", "name": f"老人{i}", "birth_year": str(1925 + i % 40),
                "gender": "female" if i % 2 else "male", "phone": f"139{i:08d}", "household_id": f"H{i:07d}",
                "community": f"sz/d{c % 4}/c{c}", "address": f"幸福路{i}号", "lat": f"{22.5 + (i % 1000) / 1e4:.4f}",
                "lon": f"{114.0 + (i % 997) / 1e4:.4f}", "medical_notes": "高血压" if i % 5 == 0 else "",
                "risk_flags": "living_alone" if i % 3 == 0 else "", "contact1_name": f"子女{i}",
                "contact1_relation": "daughter", "contact1_phone": f"138{i:08d}", "contact2_name": f"邻居{i}",
                "contact2_relation": "neighbour", "contact2_phone": f"137{i:08d}", "device_id": f"WB{i:07d}",
                "device_type": "wristband",
            }
            w.writerow([cells.get(col.key, "") for col in COLUMNS])


def _seed_regions(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute("INSERT INTO regions (path, level, name) VALUES ('sz', 'city', '深圳市')")
        for d in range(4):
            conn.execute("INSERT INTO regions (path, level, name) VALUES (%s, 'district', %s)", (f"sz/d{d}", f"区{d}"))
        for c in range(COMMUNITIES):
            conn.execute("INSERT INTO regions (path, level, name) VALUES (%s, 'community', %s)",
                         (f"sz/d{c % 4}/c{c}", f"社区{c}"))


def _count(conn: psycopg.Connection[Any], table: str) -> int:
    row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608 - fixed table names
    return int(row[0]) if row else 0


async def _one_run(db_url: str, roster: Path, store: CredentialStore, creds: Path) -> dict[str, Any]:
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        job = await create_job(conn, None, roster.name, False)
    last = [0.0]

    def progress(done: int, total: int | None) -> None:
        if time.monotonic() - last[0] > 5:
            last[0] = time.monotonic()
            sys.stderr.write(f"  {done}/{total} rows\n")

    _reset_peak()
    t0 = time.monotonic()
    outcome = await run_import(db_url, job, roster, roster.name, None, False, store, creds, on_progress=progress)
    seconds = time.monotonic() - t0
    return {"seconds": round(seconds, 1), "rows_per_s": round(outcome.rows / seconds),
            "peak_rss_mb": round(_rss_mb("VmHWM"), 1), "errors": outcome.errors, "counts": outcome.counts}


def bench(args: argparse.Namespace) -> dict[str, Any]:
    """Run the import benchmark and return its figures."""
    with ExitStack() as stack:
        base, pg = private_postgres(stack, "eldercare-bench-import-")
        migrate(pg.url)
        _seed_regions(pg.url)
        roster = base / "roster.csv"
        t0 = time.monotonic()
        write_roster(roster, args.elders)
        sys.stderr.write(f"roster of {args.elders} elders written in {time.monotonic() - t0:.1f} s"
                         f" ({roster.stat().st_size / 1e6:.1f} MB)\n")
        store = CredentialStore(base / "passwd")
        first = asyncio.run(_one_run(pg.url, roster, store, base / "creds-1.csv"))
        sys.stderr.write(f"first import: {first['seconds']} s\n")
        second = asyncio.run(_one_run(pg.url, roster, store, base / "creds-2.csv"))
        with psycopg.connect(pg.url) as conn:
            stored = {t: _count(conn, t) for t in ("households", "residents", "contacts", "devices")}
        return {
            "benchmark": "import",
            "elders": args.elders,
            "file_mb": round(roster.stat().st_size / 1e6, 1),
            "first": first,
            "second": second,
            "stored": stored,
            "broker_accounts": len(store.users()),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "platform": platform.platform()},
        }


def add_parser(sub: Any) -> None:
    """The `import` subcommand of `python -m simulators.bench`."""
    p = sub.add_parser("import", help="import a roster of N elders (contacts, wristbands) twice from CSV")
    p.add_argument("--elders", type=int, default=200_000)
    p.add_argument("--json", action="store_true", help="print only the JSON object")

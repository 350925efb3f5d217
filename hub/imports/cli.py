"""`python -m hub import FILE [--dry-run]`: a roster import from the command line, with a progress line."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

from hub.errors import ConfigError
from hub.imports.job import create_job, run_import, store_for


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")


def _progress(started: float) -> Any:
    def show(done: int, total: int | None) -> None:
        rate = done / max(time.monotonic() - started, 1e-6)
        of = f"/{total}" if total else ""
        sys.stderr.write(f"\rimported {done}{of} rows ({rate:,.0f} rows/s)")
        sys.stderr.flush()
    return show


async def _run(settings: Any, path: Path, dry_run: bool, credentials: Path | None) -> int:
    async with await psycopg.AsyncConnection.connect(settings.db_url, autocommit=True) as conn:
        job_id = await create_job(conn, None, path.name, dry_run)
    out = credentials or path.with_name(f"{path.stem}.import-{job_id}.credentials.csv")
    started = time.monotonic()
    outcome = await run_import(settings.db_url, job_id, path, path.name, None, dry_run, store_for(settings), out,
                               on_progress=_progress(started))
    sys.stderr.write("\n")
    _say(f"import {job_id}{' (dry run, nothing written)' if dry_run else ''}: {outcome.rows} rows,"
          f" {outcome.errors} errors, {time.monotonic() - started:.1f} s")
    for key, value in sorted(outcome.counts.items()):
        _say(f"  {key}: {value}")
    async with await psycopg.AsyncConnection.connect(settings.db_url) as conn:
        cur = await conn.execute("SELECT row_no, col, reason FROM import_errors WHERE job_id = %s"
                                 " ORDER BY row_no LIMIT 1000", (job_id,))
        for row_no, col, reason in await cur.fetchall():
            _say(f"  row {row_no}, {col}: {reason}")
    if outcome.errors > 1000:
        _say(f"  … and {outcome.errors - 1000} more (GET /api/imports/{job_id})")
    if outcome.credentials_file:
        _say(f"new devices' broker passwords (shown once): {outcome.credentials_file}")
    return 1 if outcome.errors else 0


def main(settings: Any, file: str, dry_run: bool, credentials: str | None) -> int:
    """Import FILE into ELDERCARE_DB_URL; exit 1 when some rows were refused."""
    if settings.db_url is None:
        raise ConfigError("ELDERCARE_DB_URL is not set")
    path = Path(file)
    if not path.is_file():
        raise ConfigError(f"no file {file}")
    return asyncio.run(_run(settings, path, dry_run, Path(credentials) if credentials else None))

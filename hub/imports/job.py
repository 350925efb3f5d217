"""Runs one roster import: reads the file in chunks, writes each in its own transaction, records progress."""

from __future__ import annotations

import asyncio
import csv
import logging
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from alerts.model import Binding
from devices.credentials import CredentialStore
from devices.provisioning import issue_credentials
from devices.registry import device_types
from hub.imports.apply import apply_chunk
from hub.imports.reader import Roster, open_roster
from hub.imports.rows import RosterRow, RowError, parse_row
from hub.users import User

log = logging.getLogger(__name__)

CHUNK = 1000
# Broker accounts are written in batches: each write rewrites the whole password file and reloads the broker.
CREDENTIAL_BATCH = 20_000


@dataclass
class ImportOutcome:
    """The figures of a finished import."""

    job_id: int
    dry_run: bool
    rows: int
    errors: int
    counts: dict[str, int]
    credentials_file: Path | None


def store_for(settings: Any) -> CredentialStore:
    """The broker's password file as the settings name it (as the devices route does)."""
    pid = settings.mqtt_reload_pid_file
    if pid is None and settings.embedded:
        pid = settings.data_dir / "mosquitto" / "mosquitto.pid"
    return CredentialStore(settings.passwd_file, pid)


async def create_job(conn: psycopg.AsyncConnection[Any], user: User | None, filename: str, dry_run: bool) -> int:
    """A queued job row; its id is what `GET /api/imports/{id}` reads."""
    cur = await conn.execute("INSERT INTO import_jobs (created_by, filename, dry_run) VALUES (%s, %s, %s)"
                             " RETURNING id", (user.id if user else None, filename[:200], dry_run))
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


class _Credentials:
    """Issues broker accounts for new devices in batches and writes their passwords to a private CSV file.

    A batch is hashed and written in a thread while the next chunks are imported; batches run one at a time.
    """

    def __init__(self, store: CredentialStore | None, path: Path | None) -> None:
        self.store, self.path = store, path
        self.pending: list[str] = []
        self.written = 0
        self.running: asyncio.Task[None] | None = None

    async def add(self, device_ids: list[str], final: bool = False) -> None:
        self.pending += device_ids
        if self.pending and (final or len(self.pending) >= CREDENTIAL_BATCH):
            ids, self.pending = self.pending, []
            await self.wait()
            self.running = asyncio.create_task(self._flush(ids))
        if final:
            await self.wait()

    async def wait(self) -> None:
        if self.running is not None:
            task, self.running = self.running, None
            await task

    async def _flush(self, ids: list[str]) -> None:
        if self.store is None or self.path is None:
            return
        await asyncio.to_thread(self._write, self.store, self.path, ids)
        self.written += len(ids)

    @staticmethod
    def _write(store: CredentialStore, path: Path, ids: list[str]) -> None:
        passwords = issue_credentials(store, ids)
        new = not path.exists()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(["device_id", "mqtt_username", "mqtt_password"])
            writer.writerows((d, d, passwords[d]) for d in ids)


async def _record_progress(conn: psycopg.AsyncConnection[Any], job_id: int, processed: int, errors: list[RowError],
                           error_count: int, counts: Counter[str]) -> None:
    async with conn.transaction():
        if errors:
            async with conn.cursor().copy("COPY import_errors (job_id, row_no, col, reason) FROM STDIN") as copy:
                for e in errors:
                    await copy.write_row((job_id, e.row, e.column, e.reason))
        await conn.execute("UPDATE import_jobs SET processed_rows = %s, error_count = %s, counts = %s WHERE id = %s",
                           (processed, error_count, Jsonb(dict(counts)), job_id))


async def run_import(db_url: str, job_id: int, path: Path, filename: str, user: User | None, dry_run: bool,
                     store: CredentialStore | None = None, credentials_file: Path | None = None,
                     on_bindings: Callable[[list[Binding]], None] | None = None,
                     on_progress: Callable[[int, int | None], None] | None = None) -> ImportOutcome:
    """Import a file into the database; a dry run does all the work in transactions that are rolled back."""
    types = frozenset(device_types().keys())
    counts: Counter[str] = Counter()
    processed = error_count = 0
    creds = _Credentials(None if dry_run else store, credentials_file)
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        try:
            roster: Roster = await asyncio.to_thread(open_roster, path, filename)
            await conn.execute("UPDATE import_jobs SET state = 'running', total_rows = %s WHERE id = %s",
                               (roster.total, job_id))
            while True:
                raw = await asyncio.to_thread(_take, roster, CHUNK)
                if not raw:
                    break
                good: list[RosterRow] = []
                errors: list[RowError] = []
                for item in raw:
                    parsed = parse_row(item, types)
                    if isinstance(parsed, list):
                        errors += parsed
                    else:
                        good.append(parsed)
                async with conn.transaction(force_rollback=dry_run):
                    result = await apply_chunk(conn, user, good)
                errors += result.errors
                counts.update(result.counts)
                processed += len(raw)
                error_count += len(errors)
                counts["rows_refused"] += len({e.row for e in errors})
                await _record_progress(conn, job_id, processed, sorted(errors, key=lambda e: e.row), error_count,
                                       counts)
                if not dry_run:
                    if on_bindings and result.bindings:
                        on_bindings(result.bindings)
                    await creds.add(result.new_devices)
                if on_progress:
                    on_progress(processed, roster.total)
            await creds.add([], final=True)
            async with conn.transaction():
                await conn.execute("UPDATE import_jobs SET state = 'done', finished_at = now(), total_rows = %s"
                                   " WHERE id = %s", (processed, job_id))
                if not dry_run:
                    await conn.execute("INSERT INTO audit_log (user_id, action, target, details)"
                                       " VALUES (%s, %s, %s, %s)",
                                       (user.id if user else None, "import.roster", f"import:{job_id}",
                                        Jsonb({"rows": processed, "errors": error_count, **counts})))
        except Exception as err:
            # Whatever stopped it, the job must not stay "running" for ever; chunks already committed stay.
            await creds.add([], final=True)
            await conn.execute("UPDATE import_jobs SET state = 'failed', finished_at = now(), failure = %s"
                               " WHERE id = %s", (str(err)[:500], job_id))
            log.warning("import %s failed after %s rows: %s", job_id, processed, type(err).__name__)
            raise
    log.info("import %s done: %s rows, %s errors, dry_run=%s", job_id, processed, error_count, dry_run)
    return ImportOutcome(job_id, dry_run, processed, error_count, dict(counts),
                         credentials_file if creds.written else None)


def _take(roster: Roster, n: int) -> list[tuple[int, dict[str, str]]]:
    out = []
    for item in roster.rows:
        out.append(item)
        if len(out) >= n:
            break
    return out

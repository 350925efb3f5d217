"""Versioned SQL migrations, applied once each at start-up under an advisory lock."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources

import psycopg

from hub.storage.errors import StorageError

log = logging.getLogger(__name__)

_LOCK_KEY = 0x454C4443  # "ELDC": one migrator at a time across hub workers
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    """One SQL file: its version, name, text and checksum."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the file, to notice a migration edited after it was applied."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available() -> list[Migration]:
    """The migrations shipped with the package, in version order."""
    found = []
    for entry in resources.files("hub.storage.sql").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise StorageError(f"two migrations share a version: {versions}")
    return found


def ensure_timescaledb(conn: psycopg.Connection) -> bool:
    """Create the TimescaleDB extension if the server offers it; False means plain PostgreSQL."""
    offered = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
    if not offered:
        return False
    preload = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()
    if preload is None or "timescaledb" not in preload[0]:
        # Trying anyway would load the library into this session and poison it for every later statement.
        log.warning("TimescaleDB is installed but not in shared_preload_libraries; not enabling it")
        return False
    try:
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    except psycopg.Error as err:
        conn.rollback()
        log.warning("TimescaleDB is installed but could not be enabled (%s); "
                    "is it in shared_preload_libraries?", type(err).__name__)
        return False
    conn.commit()
    return True


def migrate(url: str) -> list[int]:
    """Apply pending migrations; returns the versions applied now."""
    applied_now: list[int] = []
    with psycopg.connect(url, autocommit=False) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        conn.commit()
        try:
            if not ensure_timescaledb(conn):
                log.warning("TimescaleDB is not available: using plain PostgreSQL tables with time "
                            "indexes; history queries are slower and retention runs as DELETE")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY, name text NOT NULL,"
                " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            conn.commit()
            done: dict[int, str] = dict(conn.execute("SELECT version, checksum FROM schema_migrations").fetchall())
            for m in available():
                if m.version in done:
                    if done[m.version] != m.checksum:
                        raise StorageError(
                            f"migration {m.version:04d}_{m.name} was changed after it was applied; "
                            "write a new migration instead"
                        )
                    continue
                try:
                    conn.execute(m.sql.encode())
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                        (m.version, m.name, m.checksum),
                    )
                    conn.commit()
                except psycopg.Error as err:
                    conn.rollback()
                    raise StorageError(f"migration {m.version:04d}_{m.name} failed: {err}") from err
                log.info("applied migration %04d_%s", m.version, m.name)
                applied_now.append(m.version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
            conn.commit()
    return applied_now

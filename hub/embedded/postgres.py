"""A private PostgreSQL cluster with TimescaleDB preloaded, listening on loopback only."""

from __future__ import annotations

import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from hub.embedded.process import (
    EmbeddedError,
    chown_tree,
    ensure_port_free,
    last_error,
    service_user,
    spawn,
    stop,
    wait_for_port,
)

PG_BIN = Path("/usr/lib/postgresql/15/bin")
SUPERUSER = "eldercare"


def timescaledb_available(bin_dir: Path = PG_BIN) -> bool:
    """True when the TimescaleDB extension is installed for the PostgreSQL in `bin_dir`."""
    # Debian's layout: /usr/lib/postgresql/15/bin finds its share folder at /usr/share/postgresql/15.
    return (bin_dir.parents[3] / "share" / "postgresql" / "15" / "extension" / "timescaledb.control").exists()


@dataclass
class PostgresInstance:
    """One private cluster: created on first start, reused afterwards."""

    root: Path
    port: int
    timescaledb: bool = True
    bin_dir: Path = PG_BIN
    license: str | None = None  # timescaledb.license for this cluster; None keeps the build's default
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def datadir(self) -> Path:
        """The cluster's data directory."""
        return self.root / "data"

    @property
    def password(self) -> str:
        """The generated superuser password, kept beside the cluster (mode 600)."""
        return (self.root / "password").read_text().strip()

    @property
    def url(self) -> str:
        """A libpq URL for the hub's database."""
        return f"postgresql://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/eldercare"

    def admin_url(self, dbname: str = "postgres") -> str:
        """A libpq URL for another database of the same cluster."""
        return f"postgresql://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{dbname}"

    def start(self) -> None:
        """Create the cluster if needed, start it, and create the hub's database."""
        if not (self.bin_dir / "postgres").exists():
            raise EmbeddedError(f"PostgreSQL 15 is not installed ({self.bin_dir}); run scripts/bootstrap.sh")
        if self.timescaledb and not timescaledb_available(self.bin_dir):
            raise EmbeddedError("TimescaleDB is not installed for PostgreSQL 15; run scripts/bootstrap.sh")
        ensure_port_free(self.port, "private PostgreSQL", "ELDERCARE_EMBEDDED_PG_PORT")
        user = service_user("postgres")
        self.root.mkdir(parents=True, exist_ok=True)
        if not (self.datadir / "PG_VERSION").exists():
            self._initdb()
        sockdir = self.root / "sock"
        sockdir.mkdir(exist_ok=True)
        chown_tree(self.root, user)
        self._proc = spawn(self._args(sockdir), self.root / "postgres.log", user)
        wait_for_port(self.port, self._proc, "private PostgreSQL", self.root / "postgres.log")
        self._create_database()

    def _args(self, sockdir: Path) -> list[str]:
        settings = {
            "port": str(self.port),
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(sockdir),
            "max_connections": "200",
            "shared_buffers": "256MB",
            "log_min_messages": "warning",
        }
        if self.timescaledb:
            settings["shared_preload_libraries"] = "timescaledb"
            settings["timescaledb.telemetry_level"] = "off"
            if self.license is not None:
                settings["timescaledb.license"] = self.license
        args = [str(self.bin_dir / "postgres"), "-D", str(self.datadir)]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        return args

    def _initdb(self) -> None:
        if self.datadir.exists():
            shutil.rmtree(self.datadir)
        pwfile = self.root / "password"
        if not pwfile.exists():
            pwfile.write_text(secrets.token_urlsafe(24) + "\n")
        pwfile.chmod(0o600)
        chown_tree(self.root, service_user("postgres"))
        log = self.root / "initdb.log"
        proc = spawn(
            [str(self.bin_dir / "initdb"), "-D", str(self.datadir), "-U", SUPERUSER, f"--pwfile={pwfile}",
             "--auth=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"],
            log, service_user("postgres"),
        )
        if proc.wait(120) != 0:
            raise EmbeddedError(f"could not create the private PostgreSQL cluster in {self.datadir}: "
                                f"{last_error(log)}")

    def _create_database(self) -> None:
        import psycopg

        # The port opens before recovery ends ("the database system is starting up"): retry briefly.
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = psycopg.connect(self.admin_url(), autocommit=True, connect_timeout=10)
                break
            except psycopg.OperationalError as err:
                if time.monotonic() > deadline or not self.running:
                    raise EmbeddedError(f"private PostgreSQL is not accepting connections: {err}") from err
                time.sleep(0.1)
        with conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = 'eldercare'").fetchone()
            if not exists:
                conn.execute("CREATE DATABASE eldercare")

    def create_database(self, name: str) -> str:
        """Create an extra database (tests use one per test) and return its URL."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.admin_url(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.admin_url(name)

    def stop(self) -> None:
        """Fast shutdown: roll back open transactions and stop cleanly."""
        stop(self._proc, signal.SIGINT)
        self._proc = None

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The server (postmaster) process id while it runs (the benchmark reads its CPU time)."""
        return self._proc.pid if self.running and self._proc is not None else None

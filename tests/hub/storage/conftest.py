"""Clusters of both TimescaleDB editions from one Community build, for the storage tests.

The Community build is made once from the upstream source (ELDERCARE_TIMESCALEDB_SRC, the cache, or
../shared/vendor) into a private PostgreSQL tree (hub/embedded/timescale_build.py) and cached; it never
replaces the system's TimescaleDB, which `make run` and the session-wide services keep using. Without a
source the Community tests are skipped with a message saying how to get one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from hub.embedded import PostgresInstance, free_port
from hub.embedded.timescale_build import build, cache_dir, default_tree, ready, tree_bin
from hub.storage.migrations import migrate

REPO = Path(__file__).resolve().parents[3]
SOURCE_NAME = "timescaledb-2.19.3-src.tar.gz"
TEMPLATE = "edition_template"


def community_source() -> Path | None:
    """The upstream TimescaleDB 2.19.3 source tarball, wherever this machine has one."""
    for candidate in (os.environ.get("ELDERCARE_TIMESCALEDB_SRC"), cache_dir() / SOURCE_NAME,
                      REPO.parent / "shared" / "vendor" / SOURCE_NAME):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def community_bin() -> Path:
    """bin folder of a PostgreSQL 15 tree with TimescaleDB's Community build (built once, cached)."""
    tree = default_tree()
    if not ready(tree):
        source = community_source()
        if source is None:
            pytest.skip(f"Community-edition tests skipped: no TimescaleDB source {SOURCE_NAME} (set "
                        "ELDERCARE_TIMESCALEDB_SRC to it, or run `scripts/bootstrap.sh test` where GitHub is "
                        "reachable; see docs/install.md)")
        build(source, tree)
    return tree_bin(tree)


@dataclass
class Edition:
    """A running cluster of one edition, with a migrated template to copy per test."""

    license: str
    pg: PostgresInstance

    def fresh_db(self) -> str:
        """A new database copied from the migrated template."""
        name = "e_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.pg.admin_url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        return self.pg.admin_url(name)


def _start(community_bin: Path, license: str) -> Iterator[Edition]:
    root = Path(tempfile.mkdtemp(prefix=f"eldercare-{license}-"))
    root.chmod(0o755)  # the cluster runs as `postgres` under root
    pg = PostgresInstance(root / "pg", free_port(), bin_dir=community_bin, license=license)
    pg.start()
    try:
        url = pg.create_database(TEMPLATE)
        migrate(url)
        with psycopg.connect(pg.admin_url(), autocommit=True) as conn:
            conn.execute(f"ALTER DATABASE {TEMPLATE} WITH ALLOW_CONNECTIONS false IS_TEMPLATE true")
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (TEMPLATE,))
        yield Edition(license, pg)
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def community(community_bin: Path) -> Iterator[Edition]:
    """A cluster started with timescaledb.license=timescale (compression, aggregates, policy jobs)."""
    yield from _start(community_bin, "timescale")


@pytest.fixture(scope="session")
def apache(community_bin: Path) -> Iterator[Edition]:
    """The same build started with timescaledb.license=apache (none of those features)."""
    yield from _start(community_bin, "apache")


@pytest.fixture(params=["timescale", "apache"])
def edition(request: pytest.FixtureRequest) -> Edition:
    """Each edition in turn."""
    return request.getfixturevalue("community" if request.param == "timescale" else "apache")

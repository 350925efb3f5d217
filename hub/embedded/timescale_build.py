"""A private PostgreSQL 15 tree with TimescaleDB's Community build, for tests and the storage benchmark.

The system's PostgreSQL keeps whatever TimescaleDB the bootstrap installed (usually the Apache build of
the same version, with the same file names), so the Community build cannot go beside it. PostgreSQL finds
its `$libdir` and extension folder relative to its own executable, so a copy of `postgres` and `initdb`
in a tree whose `lib` and `share` mirror the system's (symlinks), plus the Community files, is a second
installation that touches nothing system-wide and needs no root. One build serves both editions:
`-c timescaledb.license=apache|timescale` per cluster.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

from hub.embedded.process import EmbeddedError

SYSTEM_BIN = Path("/usr/lib/postgresql/15/bin")
_STAMP = "eldercare-community-ok"


def cache_dir() -> Path:
    """Where built trees are kept: ~/.cache/eldercare, or /var/cache/eldercare as root.

    As root the clusters run as `postgres`, which cannot enter root's private home folder.
    """
    if os.geteuid() == 0:
        return Path("/var/cache/eldercare")
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "eldercare"


def default_tree(version: str = "2.19.3") -> Path:
    """The tree a Community build of `version` goes to."""
    return cache_dir() / f"timescaledb-community-{version}-pg15"


def tree_bin(tree: Path) -> Path:
    """The bin folder of a private tree (same relative layout as Debian's)."""
    return tree / "root" / "usr" / "lib" / "postgresql" / "15" / "bin"


def ready(tree: Path) -> bool:
    """True when a previous build completed in `tree`."""
    return (tree / _STAMP).exists()


def _pg_config(name: str) -> Path:
    out = subprocess.run([str(SYSTEM_BIN / "pg_config"), f"--{name}"], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def _mirror(system: Path, private: Path) -> None:
    """Symlink every entry of a system folder that the private one does not already have."""
    private.mkdir(parents=True, exist_ok=True)
    for entry in system.iterdir():
        target = private / entry.name
        if not target.exists() and not target.is_symlink():
            target.symlink_to(entry)


def build(source: Path, tree: Path, log: Path | None = None) -> Path:
    """Build TimescaleDB from an upstream source tarball into a private tree (once; later calls reuse it)."""
    tree.mkdir(parents=True, exist_ok=True)
    with (tree.parent / f".{tree.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test sessions wait for one build
        if ready(tree):
            return tree_bin(tree)
        if not source.exists():
            raise EmbeddedError(f"TimescaleDB source {source} not found")
        log = log or tree.parent / f"{tree.name}-build.log"
        work = tree / "src"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        with tarfile.open(source) as tar:
            tar.extractall(work, filter="data")
        (top,) = [p for p in work.iterdir() if p.is_dir()]
        pg_config = SYSTEM_BIN / "pg_config"
        steps = [
            ["./bootstrap", "-DREGRESS_CHECKS=OFF", "-DTAP_CHECKS=OFF", "-DWARNINGS_AS_ERRORS=OFF",
             "-DUSE_TELEMETRY=OFF", f"-DPG_CONFIG={pg_config}"],
            ["make", "-C", "build", f"-j{os.cpu_count() or 2}"],
            ["make", "-C", "build", "install", f"DESTDIR={tree / 'root'}"],
        ]
        with log.open("wb") as out:
            for step in steps:
                if subprocess.run(step, check=False, cwd=top, stdout=out, stderr=subprocess.STDOUT).returncode != 0:
                    raise EmbeddedError(f"building TimescaleDB failed at `{' '.join(step[:3])}` (log: {log})")
        root = tree / "root"
        private_bin = tree_bin(tree)
        private_bin.mkdir(parents=True, exist_ok=True)
        # Copies, not symlinks: PostgreSQL resolves symlinks to find its own folder.
        for name in ("postgres", "initdb"):
            shutil.copy2(SYSTEM_BIN / name, private_bin / name)
        _mirror(_pg_config("pkglibdir"), root / _rel(_pg_config("pkglibdir")))
        sharedir = _pg_config("sharedir")
        _mirror(sharedir / "extension", root / _rel(sharedir) / "extension")
        _mirror(sharedir, root / _rel(sharedir))
        shutil.rmtree(work, ignore_errors=True)
        (tree / _STAMP).write_text(f"{source.name}\n")
        return tree_bin(tree)


def _rel(path: Path) -> Path:
    return path.relative_to("/")

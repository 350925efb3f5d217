"""What the database server offers: TimescaleDB, its version and edition, and the features that follow."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import psycopg


@dataclass(frozen=True)
class Capabilities:
    """TimescaleDB presence and edition; feature flags derive from the edition."""

    timescaledb_version: str | None
    license: str | None

    @property
    def timescaledb(self) -> bool:
        """True when tables are hypertables."""
        return self.timescaledb_version is not None

    @property
    def community(self) -> bool:
        """Compression, continuous aggregates and policy jobs need the Community ('timescale') licence."""
        return self.license == "timescale"

    def as_dict(self) -> dict[str, Any]:
        """JSON shape for /health."""
        out = asdict(self)
        out["edition"] = None if not self.timescaledb else ("community" if self.community else "apache")
        out["compression"] = self.community
        out["continuous_aggregates"] = self.community
        out["retention"] = "policy" if self.community else ("drop_chunks" if self.timescaledb else "delete")
        return out


async def detect(conn: psycopg.AsyncConnection[Any]) -> Capabilities:
    """Ask the server what it offers."""
    row = await (await conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")).fetchone()
    if row is None:
        return Capabilities(None, None)
    lic = await (await conn.execute("SELECT current_setting('timescaledb.license', true)")).fetchone()
    return Capabilities(row[0], lic[0] if lic else None)

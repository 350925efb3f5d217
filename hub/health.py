"""Live health of the hub's dependencies and pipelines, as /health reports it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Component:
    """The state of one dependency: up or down, since when, the last problem, outages seen."""

    ok: bool = False
    since: float = field(default_factory=time.time)
    error: str | None = None
    outages: int = 0
    last_outage_s: float | None = None

    def up(self) -> None:
        """Mark reachable; an outage that ends is measured."""
        if not self.ok:
            if self.outages:
                self.last_outage_s = round(time.time() - self.since, 3)
            self.ok, self.since, self.error = True, time.time(), None

    def down(self, error: str) -> None:
        """Mark unreachable with a short reason (no personal data)."""
        if self.ok:
            self.outages += 1
            self.since = time.time()
        self.ok, self.error = False, error

    def as_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return {"ok": self.ok, "since": self.since, "error": self.error, "outages": self.outages,
                "last_outage_s": self.last_outage_s}


@dataclass
class Health:
    """All components plus ingestion counters; shared by the service's tasks."""

    database: Component = field(default_factory=Component)
    broker: Component = field(default_factory=Component)
    timescaledb: dict[str, Any] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    gauges: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.time)

    def count(self, name: str, n: int = 1) -> None:
        """Add to a named counter."""
        self.counters[name] = self.counters.get(name, 0) + n

    def as_dict(self) -> dict[str, Any]:
        """The /health body."""
        ready = self.database.ok and self.broker.ok
        return {
            "status": "ok" if ready else "degraded",
            "ready": ready,
            "live": True,
            "uptime_s": round(time.time() - self.started, 1),
            "database": self.database.as_dict(),
            "broker": self.broker.as_dict(),
            "timescaledb": self.timescaledb or None,
            "ingest": {"counters": dict(sorted(self.counters.items())), "gauges": dict(self.gauges)},
        }

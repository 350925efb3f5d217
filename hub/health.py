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


# Seconds; a COPY batch normally commits in 5-50 ms, seconds mean the database is struggling.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class Histogram:
    """Cumulative-free bucket counts of observed values, rendered by hub.metrics at scrape time."""

    buckets: tuple[float, ...] = LATENCY_BUCKETS
    counts: list[int] = field(default_factory=list)
    count: int = 0
    total: float = 0.0

    def observe(self, value: float) -> None:
        """Record one value (the first bucket whose bound is not below it, else only +Inf)."""
        if not self.counts:
            self.counts = [0] * len(self.buckets)
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
                break
        self.count += 1
        self.total += value


@dataclass
class Health:
    """All components plus ingestion counters; shared by the service's tasks."""

    database: Component = field(default_factory=Component)
    broker: Component = field(default_factory=Component)
    timescaledb: dict[str, Any] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    gauges: dict[str, float] = field(default_factory=dict)
    histograms: dict[str, Histogram] = field(default_factory=dict)
    started: float = field(default_factory=time.time)

    def count(self, name: str, n: int = 1) -> None:
        """Add to a named counter."""
        self.counters[name] = self.counters.get(name, 0) + n

    def observe(self, name: str, value: float) -> None:
        """Add a value (seconds) to a named latency histogram."""
        hist = self.histograms.get(name)
        if hist is None:
            hist = self.histograms[name] = Histogram()
        hist.observe(value)

    def readiness(self) -> dict[str, Any]:
        """Whether the hub can take and store messages now: the database and the broker are both up."""
        ready = self.database.ok and self.broker.ok
        return {"ready": ready, "database": {"ok": self.database.ok, "error": self.database.error},
                "broker": {"ok": self.broker.ok, "error": self.broker.error}}

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

"""Prometheus metrics, derived at scrape time from the hub's Health and a cached database summary.

Nothing here runs on the ingestion hot path: the writer, pipeline and engine only bump the plain
counters in `hub.health.Health`, and this module turns them into metric families when /metrics is
scraped. Labels take values from small closed sets (dead-letter reasons, alert types, channel
names, step names), never ids or personal data.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from hub.health import Component, Health
from hub.worker_stats import combined

if TYPE_CHECKING:
    from hub.service import Hub

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REFRESH_S = 10.0  # the database summary is recomputed at most this often, however often Prometheus scrapes
ONLINE_WINDOW_S = 600  # a device counts as connected if it is online and was heard from in this window
OVERDUE_S = 30  # an escalation timer this late means the engine is not running its steps

# Plain Health counters → (metric name without _total, help).
COUNTERS = {
    "messages_in": ("eldercare_messages_in", "Device messages taken from the broker."),
    "critical_in": ("eldercare_messages_critical", "Critical messages (SOS, fall, alarm, check-in, state) decoded."),
    "messages_committed": ("eldercare_messages_committed", "Messages whose rows were committed to the database."),
    "rows_written": ("eldercare_rows_written", "Rows written by the ingestion writer."),
    "duplicates_ignored": ("eldercare_duplicates_ignored", "Redelivered messages found already stored."),
    "shed_telemetry": ("eldercare_telemetry_shed", "Telemetry messages shed because the queue was full."),
    "ignored": ("eldercare_messages_ignored", "Messages on topics the hub does not use."),
    "detector_errors": ("eldercare_detector_errors", "Detector failures (ingestion carried on)."),
    "escalation_errors": ("eldercare_escalation_errors", "Escalation steps that failed and will be retried."),
    "forwarded_for_detection": ("eldercare_forwarded_for_detection", "Messages forwarded to their owner worker."),
    "falls_cancelled": ("eldercare_falls_cancelled", "Falls cancelled by an I'm OK check-in."),
    "rate_limited": ("eldercare_messages_rate_limited", "Messages shed because their device exceeded its rate."),
    "rate_limited_urgent": ("eldercare_alarms_collapsed", "Repeated alarms over their device's per-kind rate."),
}
# Health counters named "<prefix><label value>" → (metric name without _total, label, help).
LABELLED = {
    "dead_letter.": ("eldercare_dead_letters", "reason", "Messages dead-lettered, by reason."),
    "alerts_raised.": ("eldercare_alerts_raised", "type", "Alerts created (not refreshed), by type."),
    "escalation_step.": ("eldercare_escalation_steps", "step", "Escalation steps run, by step name."),
    "notification_ok.": ("eldercare_notifications_delivered", "channel", "Notification attempts delivered."),
    "notification_failed.": ("eldercare_notification_failures", "channel", "Notification attempts that failed."),
    "dispatch_": ("eldercare_dispatches", "service", "Emergency dispatch records built (120/110)."),
    "rate_limited.": ("eldercare_device_messages_shed", "device", "Messages shed over a device's rate, by device."),
}


@dataclass
class Summary:
    """The database-derived figures, refreshed at most every REFRESH_S seconds."""

    connected_devices: float = float("nan")
    overdue_timers: float = float("nan")
    open_alerts: dict[str, int] = field(default_factory=dict)
    refreshed: float = 0.0  # wall time of the last successful refresh
    attempted: float = 0.0  # monotonic time of the last attempt, successful or not


class SummaryCache:
    """Keeps the database summary cheap: one short query batch per REFRESH_S, none while it is fresh."""

    def __init__(self, pool: AsyncConnectionPool[Any], refresh_s: float = REFRESH_S) -> None:
        self._pool = pool
        self._refresh_s = refresh_s
        self._lock = asyncio.Lock()
        self.summary = Summary()

    async def refresh(self) -> Summary:
        """Recompute when stale; a database outage keeps the last values (their age is exported)."""
        async with self._lock:
            now = time.monotonic()
            if self.summary.attempted and now - self.summary.attempted < self._refresh_s:
                return self.summary
            self.summary.attempted = now
            try:
                await asyncio.wait_for(self._query(), 3.0)
            except (psycopg.Error, PoolTimeout, OSError, TimeoutError) as err:
                log.warning("metrics summary query failed: %s", type(err).__name__)
            return self.summary

    async def _query(self) -> None:
        async with self._pool.connection(timeout=2.0) as conn:
            row = await (await conn.execute(
                "SELECT (SELECT count(*) FROM device_status WHERE online"
                "        AND last_seen > now() - make_interval(secs => %(window)s)),"
                "       (SELECT count(*) FROM alert_timers WHERE due_at < now() - make_interval(secs => %(late)s))",
                {"window": ONLINE_WINDOW_S, "late": OVERDUE_S})).fetchone()
            rows = await (await conn.execute(
                "SELECT type, count(*) FROM alerts WHERE closed_at IS NULL GROUP BY type")).fetchall()
        assert row is not None
        self.summary.connected_devices, self.summary.overdue_timers = float(row[0]), float(row[1])
        self.summary.open_alerts = {str(t): int(n) for t, n in rows}
        self.summary.refreshed = time.time()


class HubCollector(Collector):
    """Renders one hub's Health, queue depths and the cached summary as metric families."""

    def __init__(self, hub: Hub, cache: SummaryCache) -> None:
        self._hub = hub
        self._cache = cache

    def collect(self) -> Iterator[Metric]:
        """Called by prometheus_client on every scrape."""
        health = self._hub.health
        others = self._hub.other_workers
        # Counters cover every process (the others' last snapshots); a restarted one's reset shows as a drop.
        yield from _counters(combined(health.counters, others.workers))
        if others.expected:
            up = GaugeMetricFamily("eldercare_process_up",
                                   "1 when the hub process is ready and its snapshot is fresh.", labels=["process"])
            up.add_metric(["worker-0"], 1.0 if health.database.ok and health.broker.ok else 0.0)
            for name, ok in others.up().items():
                up.add_metric([name], 1.0 if ok else 0.0)
            yield up
        yield from _components(health)
        depth = GaugeMetricFamily("eldercare_queue_depth", "Messages waiting in the hub's inbound queues.",
                                  labels=["queue"])
        for queue, n in sorted(self._hub.pipeline.depths().items()):
            depth.add_metric([queue], n)
        yield depth
        hist = health.histograms.get("db_write_seconds")
        if hist is not None:
            cumulative, buckets = 0, []
            for bound, n in zip(hist.buckets, hist.counts or [0] * len(hist.buckets), strict=True):
                cumulative += n
                buckets.append((repr(bound), cumulative))
            buckets.append(("+Inf", hist.count))
            yield HistogramMetricFamily("eldercare_db_write_seconds", "Time to commit one ingestion batch.",
                                        buckets=buckets, sum_value=hist.total)
        yield GaugeMetricFamily("eldercare_devices_known", "Device bindings loaded in memory.",
                                value=len(self._hub.bindings))
        yield from _summary(self._cache.summary)


def _counters(counters: dict[str, int]) -> Iterator[Metric]:
    for key, (name, help_text) in COUNTERS.items():
        yield CounterMetricFamily(name, help_text, value=counters.get(key, 0))
    for prefix, (name, label, help_text) in LABELLED.items():
        family = CounterMetricFamily(name, help_text, labels=[label])
        for key, value in sorted(counters.items()):
            if key.startswith(prefix):
                family.add_metric([key[len(prefix):]], value)
        yield family


def _components(health: Health) -> Iterator[Metric]:
    comps: dict[str, Component] = {"database": health.database, "broker": health.broker}
    up = GaugeMetricFamily("eldercare_component_up", "1 when the dependency is reachable.", labels=["component"])
    outages = CounterMetricFamily("eldercare_component_outages", "Outages seen since start.", labels=["component"])
    last = GaugeMetricFamily("eldercare_component_last_outage_seconds", "Length of the last outage that ended.",
                             labels=["component"])
    for name, comp in comps.items():
        up.add_metric([name], 1.0 if comp.ok else 0.0)
        outages.add_metric([name], comp.outages)
        if comp.last_outage_s is not None:
            last.add_metric([name], comp.last_outage_s)
    yield from (up, outages, last)
    yield GaugeMetricFamily("eldercare_ready", "1 when the database and the broker are both up.",
                            value=1.0 if health.database.ok and health.broker.ok else 0.0)
    yield GaugeMetricFamily("eldercare_uptime_seconds", "Seconds since the hub started.",
                            value=round(time.time() - health.started, 1))


def _summary(summary: Summary) -> Iterator[Metric]:
    yield GaugeMetricFamily("eldercare_devices_connected",
                            f"Devices online and heard from in the last {ONLINE_WINDOW_S} s (cached).",
                            value=summary.connected_devices)
    yield GaugeMetricFamily("eldercare_escalation_timers_overdue",
                            f"Escalation steps more than {OVERDUE_S} s past due (cached).",
                            value=summary.overdue_timers)
    open_alerts = GaugeMetricFamily("eldercare_alerts_open", "Open (not closed) alerts by type (cached).",
                                    labels=["type"])
    for alert_type, n in sorted(summary.open_alerts.items()):
        open_alerts.add_metric([alert_type], n)
    yield open_alerts
    yield GaugeMetricFamily("eldercare_metrics_summary_timestamp_seconds",
                            "When the cached database summary was last refreshed (0: never).",
                            value=summary.refreshed)


class Exporter:
    """One hub's metrics registry; `render` refreshes the cache when stale and returns the exposition."""

    def __init__(self, hub: Hub, refresh_s: float = REFRESH_S) -> None:
        self._hub = hub
        self.cache = SummaryCache(hub.pool, refresh_s)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(HubCollector(hub, self.cache))

    async def render(self) -> bytes:
        """The text exposition format (version 0.0.4)."""
        await self.cache.refresh()
        if self._hub.other_workers.expected:
            await self._hub.other_workers.refresh()
        return generate_latest(self.registry)

"""The running hub: one object holding the pool, pipelines and API, started under one TaskGroup."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
import uvicorn
from psycopg_pool import AsyncConnectionPool

from alerts.engine import Engine
from devices.registry import device_types
from hub import gc_pauses, worker_stats
from hub.detection import device_health
from hub.detection.geofence import Geofences
from hub.detection.home import HomeWatch
from hub.detection.wrist import WristFalls
from hub.embedded.process import ensure_port_free
from hub.health import Health
from hub.ingest.bindings import Bindings
from hub.ingest.mqtt_source import MqttSource
from hub.ingest.partition import Partition
from hub.ingest.pipeline import Pipeline
from hub.ingest.ratelimit import RateLimits
from hub.ingest.writer import Committed, Writer
from hub.settings import Settings
from hub.shutdown import raise_if_cancelled, unless_stopped
from hub.storage import capabilities, policies, retention
from hub.storage.migrations import migrate
from hub.storage.pool import make_pool, wait_for_database

log = logging.getLogger(__name__)


@dataclass
class Hub:
    """Everything the API and the background tasks share; built once per process."""

    settings: Settings
    db_url: str
    mqtt_url: str
    health: Health = field(default_factory=Health)
    pool: AsyncConnectionPool[Any] = field(init=False)
    bindings: Bindings = field(init=False)
    writer: Writer = field(init=False)
    pipeline: Pipeline = field(init=False)
    engine: Engine = field(init=False)
    home: HomeWatch = field(init=False)
    wrist: WristFalls = field(init=False)
    geofences: Geofences = field(init=False)
    source: MqttSource | None = None
    caps: capabilities.Capabilities | None = None
    # True when a separate `python -m hub escalation` process runs the escalation engine (see stack.py).
    escalation_elsewhere: bool = False

    @property
    def partition(self) -> Partition:
        """Which share of detection state this worker keeps."""
        return Partition(self.settings.workers, self.settings.worker_index)

    @property
    def primary(self) -> bool:
        """Worker 0 also runs the API, escalation, retention and device health."""
        return self.settings.worker_index == 0

    def __post_init__(self) -> None:
        self.pool = make_pool(self.db_url, self.settings.db_pool_max)
        self.bindings = Bindings(self.pool)
        self.engine = Engine.from_settings(self.pool, self.health, self.settings)
        self.writer = Writer(self.pool, self.health, self.settings.ingest_batch_max, self.settings.ingest_flush_ms,
                             on_committed=self._committed)
        self.pipeline = Pipeline(
            self.settings.mqtt_topic_root, device_types(), self.bindings, self.writer, self.health,
            self.settings.max_payload_bytes, self.settings.max_clock_skew_s, self.settings.ingest_queue_max,
            zigbee2mqtt_base=self.settings.zigbee2mqtt_base_topic, partition=self.partition,
            limits=RateLimits(self.settings.device_rate_per_s, self.settings.device_burst,
                              self.settings.device_alarm_rate_per_s, self.settings.device_alarm_burst),
        )
        self.home = HomeWatch(self.pool, owns=self.partition.owns_resident)
        others = [worker_stats.worker_name(i) for i in range(1, self.settings.workers)] if self.primary else []
        if self.primary and self.escalation_elsewhere:
            others.append(worker_stats.ESCALATION)
        self.other_workers = worker_stats.Others(self.pool, others)
        self.geofences = Geofences(self.pool)
        self.wrist = WristFalls()
        self.pipeline.detectors = [self.wrist, self.home, self.geofences]

    async def _committed(self, committed: Committed) -> None:
        if any(created for _, created, _ in committed.alerts):
            self.engine.wake()

    def health_report(self) -> dict[str, Any]:
        """The /health body, with live queue depths."""
        self.health.gauges.update({f"queue_{k}": v for k, v in self.pipeline.depths().items()})
        self.health.gauges["devices_known"] = len(self.bindings)
        return self.health.as_dict()

    def publish_caps(self, caps: capabilities.Capabilities) -> None:
        """Use and report what the server has now (re-read by every retention round)."""
        self.caps = caps
        self.health.timescaledb = caps.as_dict()

    async def prepare(self) -> None:
        """Wait for the database, migrate, detect TimescaleDB, open the pool, load bindings."""
        await wait_for_database(self.db_url, self.health)
        await asyncio.to_thread(migrate, self.db_url)
        if self.primary:  # compression, retention jobs and aggregates, where the edition has them
            await asyncio.to_thread(policies.ensure, self.db_url, policies.Plan.from_settings(self.settings))
        await self.pool.open(wait=True, timeout=30)
        async with self.pool.connection() as conn:
            self.publish_caps(await capabilities.detect(conn))
        assert self.caps is not None
        if not self.caps.timescaledb:
            log.warning("running on plain PostgreSQL without TimescaleDB: ordinary tables with time indexes")
        else:
            log.info("TimescaleDB %s (%s edition)", self.caps.timescaledb_version, self.caps.as_dict()["edition"])
        count = await self.bindings.load_all()
        log.info("loaded %d device bindings, %d home monitors, %d safe zones", count, await self.home.load(),
                 await self.geofences.refresh())

    def start_ingest(self, loop: asyncio.AbstractEventLoop) -> None:
        """Connect to the broker and start feeding the pipeline."""
        root = self.settings.mqtt_topic_root.rstrip("/")
        topics = [f"{root}/#"]
        if self.settings.zigbee2mqtt_base_topic:
            topics.append(self.settings.zigbee2mqtt_base_topic.rstrip("/") + "/#")
        client_id = self.settings.mqtt_client_id
        if self.settings.workers > 1:
            client_id = f"{client_id}-{self.settings.worker_index}"  # each worker keeps its own session
        source = MqttSource(
            self.mqtt_url, client_id, self.partition.subscriptions(topics), self.pipeline.deliver, self.health,
            self.pipeline.critical_room, self.pipeline.telemetry_room,
            critical_prefixes=tuple(t[:-1] for t in topics[1:]),
        )
        self.source = source
        self.pipeline.on_drained = source.notify_drained

        def forward(topic: str, payload: bytes) -> None:
            source.client.publish(topic, payload, qos=1)

        self.pipeline.forward = forward
        self.source.start(loop)

    async def stop_ingest(self) -> None:
        """Stop taking messages and flush what was already decoded (the writer still runs)."""
        if self.source is not None:
            self.source.stop()
            self.source = None
        try:
            await self.writer.drain(timeout=5)
        except (TimeoutError, psycopg.Error):
            log.warning("shutdown with unflushed data; unacknowledged critical messages stay at the broker")

    async def close(self) -> None:
        """Release the broker session and the pool."""
        if self.source is not None:
            self.source.stop()
        await self.pool.close()


async def _every(seconds: float, job: Callable[[], Awaitable[object]]) -> None:
    """Run a refresh job on a schedule; a database hiccup waits for the next round."""
    while True:
        raise_if_cancelled()
        await asyncio.sleep(seconds)
        try:
            await job()
        except psycopg.Error as err:
            log.warning("scheduled %s failed: %s", getattr(job, "__name__", "job"), type(err).__name__)


async def serve(hub: Hub, stop: asyncio.Event, with_api: bool = True) -> None:
    """Run ingestion, writer, escalation, retention and the API until `stop` is set."""
    from hub.api.app import create_app

    settings = hub.settings
    server: uvicorn.Server | None = None
    with_api = with_api and hub.primary
    if with_api:
        ensure_port_free(settings.api_port, "API", "ELDERCARE_API_PORT")
        # uvicorn believes X-Forwarded-For from 127.0.0.1 unless told otherwise, so any local process could claim
        # any client address: only the proxies named in ELDERCARE_API_TRUSTED_PROXIES are believed.
        proxies = settings.trusted_proxy_list
        config = uvicorn.Config(create_app(hub), host=settings.api_host, port=settings.api_port,
                                log_config=None, lifespan="off", access_log=False,
                                proxy_headers=bool(proxies), forwarded_allow_ips=proxies)
        server = uvicorn.Server(config)
        # We own SIGINT/SIGTERM: uvicorn must neither take them over nor re-raise them on exit.
        server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    if not await unless_stopped(hub.prepare(), stop):
        await hub.close()  # stopped while waiting for the database: nothing else was started
        return
    unsettle = gc_pauses.settle(hub.health)
    listening_since = datetime.now(UTC)
    hub.start_ingest(asyncio.get_running_loop())
    assert hub.caps is not None
    plan = policies.Plan.from_settings(settings)
    try:
        async with asyncio.TaskGroup() as tg:
            tasks = [
                tg.create_task(hub.writer.run(), name="writer"),
                tg.create_task(hub.pipeline.run(), name="pipeline"),
                tg.create_task(hub.home.run(hub.writer.add_triggers, hub.caps.timescaledb), name="home-detection"),
                tg.create_task(_every(300, hub.geofences.refresh), name="safe-zones"),
                # A band that goes silent after an impact still gets its verdict (a fall, then silence).
                tg.create_task(hub.wrist.run(hub.writer.add_triggers), name="wrist-pauses"),
            ]
            # Only worker 0 serves /health and /metrics, and it reads these snapshots; a worker 0 without the
            # API (the benchmark's) writes its own, so its counters can be read somewhere too.
            if not hub.primary or server is None:
                tasks.append(tg.create_task(worker_stats.run(
                    hub.pool, worker_stats.worker_name(settings.worker_index), hub.health, hub.health_report),
                    name="worker-stats"))
            if hub.primary and not hub.escalation_elsewhere:
                tasks.append(tg.create_task(hub.engine.run(), name="escalation"))
            if hub.primary:  # database-driven jobs need only one runner
                tasks += [
                    tg.create_task(retention.run(hub.pool, hub.caps, plan, hub.publish_caps), name="retention"),
                    # Silence is not counted while this hub was away: a restart is not every device going offline.
                    tg.create_task(device_health.run(hub.pool, device_types(), hub.writer.add_triggers,
                                                     listening_since=listening_since),
                                   name="health"),
                ]
            if server is not None:
                tasks.append(tg.create_task(server.serve(), name="api"))
            await stop.wait()
            if server is not None:
                server.should_exit = True
            await hub.stop_ingest()
            for task in tasks:
                if task.get_name() != "api":
                    task.cancel()
    finally:
        unsettle()
        await hub.close()

"""GET /metrics on a running hub: ingestion, dead letters, alerts, escalation and outages as Prometheus metrics."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hub.metrics import SummaryCache
from simulators.native import message

pytestmark = pytest.mark.anyio


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of an exposition."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    """One sample's value, or an assertion naming what is missing."""
    key = (name, tuple(sorted(labels.items())))
    assert key in found, f"{name}{labels} not exported; have {sorted(n for n, _ in found if n.startswith(name))}"
    return found[key]


async def _scrape(base: str) -> tuple[httpx.Response, dict[Any, float]]:
    async with httpx.AsyncClient(base_url=base) as http:
        res = await http.get("/metrics")
    return res, samples(res.text)


async def test_metrics_count_messages_dead_letters_alerts_and_escalation(running_hub, world, devices, settings):
    rid = await world.resident("R1")
    password = await world.device("WB1", "wristband", rid)
    base = f"http://127.0.0.1:{settings.api_port}"
    client = await devices.connect("WB1", password)
    try:
        await client.publish(world.topic("wristband", "WB1", "heartbeat"),
                             message({"battery": 81, "signal": -67, "worn": True}), qos=1)
        await client.publish(world.topic("wristband", "WB1", "heartbeat"), b"{not json", qos=1)
        await client.publish(world.topic("wristband", "WB1", "sos"), message({"location": None}), qos=1)
    finally:
        await client.__aexit__(None, None, None)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if running_hub.health.counters.get("escalation_steps", 0) >= 1 \
                and running_hub.health.counters.get("messages_committed", 0) >= 3:
            break
        await asyncio.sleep(0.05)

    res, found = await _scrape(base)
    assert res.status_code == 200
    assert res.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert value(found, "eldercare_messages_in_total") == 3
    assert value(found, "eldercare_messages_critical_total") == 1
    assert value(found, "eldercare_dead_letters_total", reason="malformed_json") == 1
    assert value(found, "eldercare_alerts_raised_total", type="sos") == 1
    assert value(found, "eldercare_alerts_open", type="sos") == 1
    assert value(found, "eldercare_escalation_steps_total", step="first_notice") >= 1
    assert value(found, "eldercare_notifications_delivered_total", channel="console") >= 1
    assert value(found, "eldercare_telemetry_shed_total") == 0
    assert value(found, "eldercare_queue_depth", queue="critical") == 0
    assert value(found, "eldercare_queue_depth", queue="telemetry") == 0
    assert value(found, "eldercare_db_write_seconds_count") >= 1
    assert value(found, "eldercare_db_write_seconds_bucket", le="+Inf") >= 1
    assert value(found, "eldercare_devices_connected") == 1
    assert value(found, "eldercare_devices_known") >= 1
    assert value(found, "eldercare_component_up", component="database") == 1
    assert value(found, "eldercare_component_up", component="broker") == 1
    assert value(found, "eldercare_ready") == 1
    # Labels never carry ids or personal data.
    assert "WB1" not in res.text and "R1" not in res.text and "Test Resident" not in res.text


async def test_failed_notifications_are_counted_per_channel(running_hub, settings):
    running_hub.health.count("notification_failed.family-app", 2)
    running_hub.health.database.down("write failed: OperationalError")
    _, found = await _scrape(f"http://127.0.0.1:{settings.api_port}")
    assert value(found, "eldercare_notification_failures_total", channel="family-app") == 2
    assert value(found, "eldercare_component_up", component="database") == 0
    assert value(found, "eldercare_component_outages_total", component="database") == 1
    assert value(found, "eldercare_ready") == 0
    running_hub.health.database.up()
    _, found = await _scrape(f"http://127.0.0.1:{settings.api_port}")
    assert value(found, "eldercare_component_last_outage_seconds", component="database") >= 0


async def test_database_summary_is_cached_between_scrapes(running_hub, db_url):
    cache = SummaryCache(running_hub.pool, refresh_s=60)
    first = await cache.refresh()
    stamp = first.refreshed
    assert stamp > 0 and first.connected_devices == 0
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        await conn.execute("INSERT INTO regions (path, level, name) VALUES ('x', 'city', 'x')")
    again = await cache.refresh()
    assert again.refreshed == stamp, "a second scrape within the refresh interval must not query again"


async def test_readiness_and_liveness_are_reported_separately(running_hub, settings):
    base = f"http://127.0.0.1:{settings.api_port}"
    async with httpx.AsyncClient(base_url=base) as http:
        ready = await http.get("/health/ready")
        live = await http.get("/health/live")
        both = await http.get("/health")
        assert ready.status_code == 200 and ready.json()["ready"] is True
        assert ready.json()["database"] == {"ok": True, "error": None}
        assert live.status_code == 200 and live.json() == {"live": True}
        assert both.json()["readiness"]["ready"] is True and both.json()["liveness"]["live"] is True

        running_hub.health.broker.down("disconnected: test")
        try:
            ready = await http.get("/health/ready")
            live = await http.get("/health/live")
            both = await http.get("/health")
        finally:
            running_hub.health.broker.up()
    assert ready.status_code == 503
    assert ready.json()["broker"] == {"ok": False, "error": "disconnected: test"}
    assert live.status_code == 200, "a dependency outage is not a reason to restart the hub"
    assert both.status_code == 503 and both.json()["live"] is True and both.json()["ready"] is False

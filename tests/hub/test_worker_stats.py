"""Worker 0's /health and /metrics cover every worker: the others' counters arrive through the database."""

from __future__ import annotations

import asyncio

import httpx
import psycopg
import pytest

from hub import worker_stats
from hub.health import Health
from hub.service import Hub, serve
from hub.worker_stats import WorkerStats, combined
from tests.hub.test_metrics import samples, value

pytestmark = pytest.mark.anyio


def test_counters_are_summed_over_workers_stale_ones_included():
    others = [WorkerStats("worker-1", True, {"shed_telemetry": 4, "messages_in": 10}, {}, 1.0),
              WorkerStats("worker-2", False, {"messages_in": 5}, {}, 99.0)]
    assert combined({"messages_in": 1, "dead_letter.bad_json": 2}, others) == {
        "messages_in": 16, "shed_telemetry": 4, "dead_letter.bad_json": 2}
    assert [w.stale for w in others] == [False, True]


async def test_shedding_in_worker_1_shows_in_worker_0s_health_and_metrics(two_workers, settings):
    first, second = two_workers
    second.health.count("shed_telemetry", 7)
    second.health.count("dead_letter.bad_json", 2)
    await worker_stats.publish(second.pool, "worker-1", second.health, second.health_report)
    await asyncio.sleep(worker_stats.READ_S + 0.1)  # worker 0 reads the table at most this often
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.api_port}") as http:
        body = (await http.get("/health")).json()
        found = samples((await http.get("/metrics")).text)
    [one] = body["workers"]
    assert one["process"] == "worker-1" and one["ready"] and not one["stale"]
    assert one["counters"]["shed_telemetry"] == 7
    assert body["workers_ok"] is True
    own = first.health.counters
    assert body["ingest_all_workers"]["counters"]["shed_telemetry"] == 7 + own.get("shed_telemetry", 0)
    assert value(found, "eldercare_telemetry_shed_total") == 7 + own.get("shed_telemetry", 0)
    assert value(found, "eldercare_dead_letters_total", reason="bad_json") == 2 + own.get("dead_letter.bad_json", 0)
    assert value(found, "eldercare_process_up", process="worker-1") == 1.0


@pytest.fixture
async def worker_zero_alone(settings):
    """Worker 0 of two, with no worker 1 running: nothing else writes worker 1's row."""
    s = settings.model_copy(update={"workers": 2, "worker_index": 0})
    hub = Hub(s, s.db_url, s.mqtt_url)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(hub, stop))
    for _ in range(200):
        if hub.health.broker.ok and hub.caps is not None:
            break
        await asyncio.sleep(0.05)
    try:
        yield hub
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


async def _health_and_metrics(port: int) -> tuple[dict, dict]:
    await asyncio.sleep(worker_stats.READ_S + 0.1)  # worker 0 reads the table at most this often
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        for _ in range(100):
            res = await http.get("/health")
            if res.status_code == 200:
                break
            await asyncio.sleep(0.1)
        return res.json(), samples((await http.get("/metrics")).text)


async def test_a_missing_or_silent_worker_is_reported_not_dropped(worker_zero_alone, settings):
    body, found = await _health_and_metrics(settings.api_port)
    assert body["workers"] == [{"process": "worker-1", "ready": False, "stale": True, "age_s": None, "counters": {},
                                "gauges": {}}]
    assert body["workers_ok"] is False
    assert value(found, "eldercare_process_up", process="worker-1") == 0.0

    ghost = Health()
    ghost.database.up()
    ghost.broker.up()
    ghost.count("shed_telemetry", 3)
    await worker_stats.publish(worker_zero_alone.pool, "worker-1", ghost, lambda: {})
    body, found = await _health_and_metrics(settings.api_port)
    assert body["workers_ok"] is True and body["workers"][0]["counters"] == {"shed_telemetry": 3}
    assert value(found, "eldercare_process_up", process="worker-1") == 1.0

    async with await psycopg.AsyncConnection.connect(settings.db_url, autocommit=True) as conn:
        await conn.execute("UPDATE worker_stats SET updated_at = now() - interval '60 seconds'")  # it went quiet
    body, found = await _health_and_metrics(settings.api_port)
    assert body["workers"][0]["stale"] is True and body["workers"][0]["age_s"] >= 60
    assert body["workers_ok"] is False
    assert value(found, "eldercare_process_up", process="worker-1") == 0.0
    assert value(found, "eldercare_telemetry_shed_total") >= 3  # its counts still happened

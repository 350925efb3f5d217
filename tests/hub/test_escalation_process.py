"""`python -m hub escalation`: the engine in its own process escalates what worker 0 stores, and
worker 0's /health and /metrics include its counters."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import httpx
import psycopg
import pytest

from hub import worker_stats
from hub.service import Hub, serve
from simulators.native import message
from tests.hub.test_metrics import samples, value

pytestmark = pytest.mark.anyio


@pytest.fixture
async def hub_without_engine(settings):
    """Worker 0 with escalation left to another process."""
    hub = Hub(settings, settings.db_url, settings.mqtt_url, escalation_elsewhere=True)
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


@pytest.fixture
def escalation_process(settings, tmp_path):
    log = (tmp_path / "escalation.log").open("wb")
    env = {**os.environ, "ELDERCARE_DB_URL": settings.db_url, "ELDERCARE_LOG_LEVEL": "INFO",
           "ELDERCARE_DATA_DIR": str(tmp_path / "var")}
    env.pop("ELDERCARE_MQTT_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "hub", "escalation"], env=env, stdout=log, stderr=log)
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()


async def test_the_escalation_process_notifies_for_sos_stored_by_worker_0(
        hub_without_engine, escalation_process, world, devices, settings, tmp_path):
    await world.resident("R1")
    client = await devices.connect("WB1", await world.device("WB1", "wristband", "R1"))
    try:
        await client.publish(world.topic("wristband", "WB1", "sos"), message({"location": None}), qos=1)
    finally:
        await client.__aexit__(None, None, None)
    async with await psycopg.AsyncConnection.connect(settings.db_url, autocommit=True) as conn:
        deadline = time.monotonic() + 20  # includes the process's start-up
        row = None
        while time.monotonic() < deadline and row is None:
            assert escalation_process.poll() is None, (tmp_path / "escalation.log").read_text()[-2000:]
            row = await (await conn.execute(
                "SELECT count(*) FROM alert_events WHERE kind = 'notification' HAVING count(*) > 0")).fetchone()
            await asyncio.sleep(0.1)
    assert row is not None, "no notification: " + (tmp_path / "escalation.log").read_text()[-2000:]
    assert "escalation_steps" not in hub_without_engine.health.counters  # worker 0 did not run the step

    await asyncio.sleep(worker_stats.PUBLISH_S + worker_stats.READ_S)  # its next snapshot, then worker 0's read
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.api_port}") as http:
        body = (await http.get("/health")).json()
        found = samples((await http.get("/metrics")).text)
    [escalation] = body["workers"]
    assert escalation["process"] == "escalation" and escalation["ready"] and not escalation["stale"]
    assert escalation["counters"]["escalation_steps"] >= 1
    assert value(found, "eldercare_escalation_steps_total", step="first_notice") >= 1
    assert value(found, "eldercare_process_up", process="escalation") == 1.0

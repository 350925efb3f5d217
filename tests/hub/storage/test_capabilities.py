"""/health reports the compression, retention jobs and aggregates that exist on the server."""

from __future__ import annotations

import asyncio

import httpx
import psycopg
import pytest

from hub.embedded import free_port
from hub.settings import load_settings


async def _health(edition, services, test_id, tmp_path) -> tuple[dict, str]:
    from hub.service import Hub, serve

    url = edition.fresh_db()
    settings = load_settings(db_url=url, mqtt_url=services.mqtt_url(), mqtt_topic_root=f"t/{test_id}/v1",
                             mqtt_client_id=f"hub-{test_id}", data_dir=tmp_path / "var", api_port=free_port(),
                             compress_after_days_telemetry=3, retention_days_dead_letters=5)
    hub = Hub(settings, url, services.mqtt_url())
    stop = asyncio.Event()
    task = asyncio.create_task(serve(hub, stop))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.api_port}") as http:
            for _ in range(400):
                if task.done():
                    task.result()
                try:
                    res = await http.get("/health")
                    if res.status_code == 200:
                        return res.json()["timescaledb"], url
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError("the hub did not become healthy in 20 s")
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


@pytest.mark.anyio
async def test_health_lists_what_the_community_server_runs(community, services, test_id, tmp_path):
    shown, url = await _health(community, services, test_id, tmp_path)
    assert shown["edition"] == "community"
    assert shown["compression"]["policies"]["readings"] == "3 days"
    assert shown["retention"]["mode"] == "policy"
    assert shown["continuous_aggregates"]["activity_hourly"]["real_time"] is True
    # Read from the server, not assumed: the jobs /health lists are the ones in timescaledb_information.jobs.
    with psycopg.connect(url) as conn:
        n = conn.execute("SELECT count(*) FROM timescaledb_information.jobs WHERE proc_name IN"
                         " ('policy_compression', 'policy_retention', 'policy_refresh_continuous_aggregate')"
                         ).fetchone()
    listed = (len(shown["compression"]["policies"]) + len(shown["retention"]["policies"])
              + len(shown["continuous_aggregates"]))
    assert n == (listed,)


@pytest.mark.anyio
async def test_health_on_the_apache_edition_lists_no_jobs(apache, services, test_id, tmp_path):
    shown, _ = await _health(apache, services, test_id, tmp_path)
    assert shown["edition"] == "apache"
    assert shown["compression"] == {"tables": [], "policies": {}}
    assert shown["retention"] == {"mode": "drop_chunks", "policies": {}}
    assert shown["continuous_aggregates"] == {}

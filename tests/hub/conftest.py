"""Fixtures shared by the hub's tests."""

from __future__ import annotations

import asyncio
import time

import pytest

from hub.service import Hub, serve


@pytest.fixture
async def two_workers(settings):
    """Workers 0 and 1 of a two-worker hub behind one shared subscription (worker 0 serves the API)."""
    hubs, stops, tasks = [], [], []
    for index in range(2):
        s = settings.model_copy(update={"workers": 2, "worker_index": index})
        hub = Hub(s, s.db_url, s.mqtt_url)
        stop = asyncio.Event()
        hubs.append(hub)
        stops.append(stop)
        tasks.append(asyncio.create_task(serve(hub, stop)))
    deadline = time.monotonic() + 10
    while not all(h.health.broker.ok for h in hubs):
        assert time.monotonic() < deadline, "workers did not connect"
        for t in tasks:
            if t.done():
                t.result()
        await asyncio.sleep(0.05)
    try:
        yield hubs
    finally:
        for stop in stops:
            stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 20)

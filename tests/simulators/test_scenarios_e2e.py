"""Every shipped scenario, end to end: a real hub, the real broker, provisioning and checks through the API."""

from __future__ import annotations

import asyncio

import pytest

from simulators.household import ApiProvisioner
from simulators.hubapi import HubApi
from simulators.scenario import load_scenario, shipped
from simulators.verify import Target, report, run_scenario

pytestmark = pytest.mark.anyio


async def test_every_shipped_scenario_passes(running_hub, world, settings, services):
    await world.region_tree()
    await world.user("op", "operator")
    scenarios = [load_scenario(path) for path in shipped()]
    assert len(scenarios) >= 10
    async with HubApi(f"http://127.0.0.1:{settings.api_port}", "op", "op-pw") as api:
        target = Target(api, ApiProvisioner(api), "127.0.0.1", services.broker.device_port, settings.mqtt_topic_root)
        results = await asyncio.gather(*(run_scenario(s, target) for s in scenarios))
    failures = [report(r) for r in results if not r.passed]
    assert not failures, "\n".join(failures)

"""Community outlines: set, checked, removed, audited."""

from __future__ import annotations

import httpx
import pytest

from tests.hub.api.conftest import Scene

pytestmark = pytest.mark.anyio


async def test_outline_set_checked_and_removed(scene: Scene) -> None:
    path = "/api/regions/sz/futian/lianhua/outline"
    async with httpx.AsyncClient(base_url=scene.base, headers=scene.headers["operator"]) as http:
        ok = await http.put(path, json={"polygon": [[114.0, 22.5], [114.1, 22.5], [114.1, 22.6]]})
        too_few = await http.put(path, json={"polygon": [[114.0, 22.5], [114.1, 22.5]]})
        off_earth = await http.put(path, json={"polygon": [[114.0, 95], [114.1, 22.5], [114.1, 22.6]]})
        stored = await scene.sql("SELECT outline FROM regions WHERE path = 'sz/futian/lianhua'")
        removed = await http.put(path, json={"polygon": None})
    assert ok.status_code == 200 and stored[0][0] == [[114.0, 22.5], [114.1, 22.5], [114.1, 22.6]]
    assert too_few.status_code == 422 and off_earth.status_code == 422
    assert removed.status_code == 200
    assert (await scene.sql("SELECT outline FROM regions WHERE path = 'sz/futian/lianhua'"))[0][0] is None
    actions = await scene.sql("SELECT action FROM audit_log WHERE target = 'region:sz/futian/lianhua'")
    assert [a for (a,) in actions] == ["region.outline", "region.outline"]

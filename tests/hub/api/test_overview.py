"""The overview: figures in total and per community, within the caller's scope."""

from __future__ import annotations

import httpx
import pytest

from tests.hub.api.conftest import Scene

pytestmark = pytest.mark.anyio


async def test_figures_per_community_and_scope(scene: Scene) -> None:
    critical = await scene.alert("in", severity="critical")
    await scene.sql("UPDATE alerts SET acknowledged_at = created_at + interval '30 seconds' WHERE id = %s",
                    (critical,))
    await scene.sql("UPDATE regions SET outline = '[[114.0,22.5],[114.1,22.5],[114.1,22.6]]'"
                    " WHERE path = 'sz/futian/lianhua'")
    async with httpx.AsyncClient(base_url=scene.base, headers=scene.headers["admin"]) as http:
        o = (await http.get("/api/overview")).json()
    total = o["total"]
    assert total["elders"] == 2 and total["devices"] == 2 and total["devices_low_battery"] == 2
    assert total["open_by_severity"]["critical"] == 1 and total["open_by_severity"]["high"] == 2
    assert total["acked_today"] == 1 and total["ack_median_s"] == pytest.approx(30, abs=1)
    assert total["visits_due"] == 2 and total["visits_done"] == 2 and total["visit_rate"] == 1.0
    assert sum(total["today_by_type"].values()) == 3
    assert {c["path"] for c in o["communities"]} == {"sz/futian/lianhua", "sz/nanshan/shekou"}
    assert len(o["last_7_days"]) == 7 and sum(o["last_7_days"][-1]["by_severity"].values()) == 3
    assert len(o["map_alerts"]) == 3 and o["outlines"][0]["path"] == "sz/futian/lianhua"

    async with httpx.AsyncClient(base_url=scene.base, headers=scene.headers["operator"]) as http:
        scoped = (await http.get("/api/overview")).json()
    assert scoped["total"]["elders"] == 1
    assert [c["path"] for c in scoped["communities"]] == ["sz/futian/lianhua"]
    assert all(a["region_path"] == "sz/futian/lianhua" for a in scoped["map_alerts"])

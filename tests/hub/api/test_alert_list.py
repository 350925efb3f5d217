"""The alert list: the elder's name, age, community and address; filters; unacknowledged critical alerts on top."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest

from tests.hub.api.conftest import Scene

pytestmark = pytest.mark.anyio


async def test_urgent_first_with_who_and_where(scene: Scene) -> None:
    critical = await scene.alert("in", severity="critical")
    newer = await scene.alert("in", severity="high")
    acked = await scene.alert("in", severity="critical")
    await scene.sql("UPDATE alerts SET acknowledged_at = now() WHERE id = %s", (acked,))
    await scene.sql("UPDATE regions SET name = '莲花街道' WHERE path = 'sz/futian/lianhua'")
    async with httpx.AsyncClient(base_url=scene.base, headers=scene.headers["operator"]) as http:
        page = (await http.get("/api/alerts", params={"state": "open"})).json()
        ids = [a["id"] for a in page["items"]]
        assert ids[0] == critical and page["items"][0]["pinned"] is True
        assert all(not a["pinned"] for a in page["items"][1:])
        top = page["items"][0]
        assert top["resident_name"] == "Name of IN-R" and top["community_name"] == "莲花街道"
        assert top["age"] == datetime.now().year - 1938 and top["address"] == "IN-H 1号楼 101"

        # Search by the elder's name, or by a contact's phone number; filter by type and severity.
        assert {a["id"] for a in (await http.get("/api/alerts", params={"q": "of IN"})).json()["items"]} >= {
            critical, newer, acked}
        assert (await http.get("/api/alerts", params={"q": "13800000001"})).json()["items"]
        assert (await http.get("/api/alerts", params={"q": "nobody"})).json()["items"] == []
        only = (await http.get("/api/alerts", params={"severity": "high", "community": "sz/futian"})).json()["items"]
        assert newer in {a["id"] for a in only} and all(a["severity"] == "high" for a in only)

        # Paging never repeats the pinned alert and never loses one.
        seen: list[int] = []
        cursor = None
        while True:
            params = {"limit": 1, **({"before": cursor} if cursor else {})}
            res = (await http.get("/api/alerts", params=params)).json()
            seen += [a["id"] for a in res["items"]]
            cursor = res["next_before"]
            if cursor is None:
                break
        assert sorted(seen) == sorted(set(seen)) and set(seen) >= {critical, newer, acked}


async def test_out_of_scope_community_filter_shows_nothing(scene: Scene) -> None:
    async with httpx.AsyncClient(base_url=scene.base, headers=scene.headers["community_worker"]) as http:
        res = await http.get("/api/alerts", params={"community": "sz/nanshan/shekou"})
    assert res.status_code == 200 and res.json()["items"] == []

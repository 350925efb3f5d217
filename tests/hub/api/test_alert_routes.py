"""Alert routes over the lifecycle: a long timeline pages both ways with the latest first reachable, and
resolving follows the one closing rule (issue 17, findings 7 and 16)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.hub.api.conftest import Scene

pytestmark = pytest.mark.anyio


def _link(res: httpx.Response, rel: str) -> str | None:
    found = re.search(rf'<([^>]+)>; rel="{rel}"', res.headers.get("link", ""))
    return found.group(1) if found else None


async def test_the_latest_timeline_entries_are_always_reachable(scene: Scene) -> None:
    alert_id = await scene.alert("in", severity="critical")
    # 1,500 older entries (what the flood of finding 7 left before aggregation), then a comment and an acceptance.
    await scene.sql("INSERT INTO alert_events (alert_id, kind, actor, details)"
                    " SELECT %s, 'notification', 'engine', jsonb_build_object('n', n) FROM generate_series(1, 1500) n",
                    (alert_id,))
    async with httpx.AsyncClient(base_url=scene.base, timeout=10, headers=scene.headers["operator"]) as http:
        assert (await http.post(f"/api/alerts/{alert_id}/comment", json={"text": "on the phone with her"})
                ).status_code == 200
        assert (await http.post(f"/api/escalations/{alert_id}/accept", json={})).status_code == 200
        latest = await http.get(f"/api/alerts/{alert_id}/timeline")
        assert latest.status_code == 200
        page = latest.json()
        assert len(page) == 200 and [e["kind"] for e in page[-2:]] == ["comment", "accepted"]
        assert _link(latest, "next") is None
        # Back through every page to the first entry: each entry exactly once, in order.
        entries, res = page, latest
        while (prev := _link(res, "prev")) is not None:
            res = await http.get(prev)
            entries = res.json() + entries
        ids = [e["id"] for e in entries]
        assert ids == sorted(set(ids)) and len(ids) == 1503 and entries[0]["kind"] == "created"
        # And forward again from the start.
        first = await http.get(f"/api/alerts/{alert_id}/timeline", params={"after": 0, "limit": 50})
        assert [e["id"] for e in first.json()] == ids[:50]
        nxt = _link(first, "next")
        assert nxt is not None
        assert [e["id"] for e in (await http.get(nxt)).json()] == ids[50:100]
        both = await http.get(f"/api/alerts/{alert_id}/timeline", params={"after": 1, "before": 9})
        too_many = await http.get(f"/api/alerts/{alert_id}/timeline", params={"limit": 1000})
    assert both.status_code == 400 and too_many.status_code == 422


async def test_a_community_worker_resolves_only_after_accepting(scene: Scene, running_hub: Any) -> None:
    alert_id = await scene.alert("in")
    async with httpx.AsyncClient(base_url=scene.base, timeout=10, headers=scene.headers["community_worker"]) as http:
        early = await http.post(f"/api/alerts/{alert_id}/resolve", json={"resolution": "false_alarm"})
        close = await http.post(f"/api/escalations/{alert_id}/close", json={"resolution": "false_alarm"})
        assert (await http.post(f"/api/escalations/{alert_id}/accept", json={})).status_code == 200
        done = await http.post(f"/api/alerts/{alert_id}/resolve", json={"resolution": "false_alarm"})
    # Both routes, one rule and one answer.
    assert (early.status_code, close.status_code) == (409, 409)
    assert early.json()["detail"] == close.json()["detail"] == f"accept alert {alert_id} first; it is not your response"
    assert done.status_code == 200 and done.json()["resolution"] == "false_alarm"

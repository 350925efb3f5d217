"""CSV exports: the documented parameter names, and unknown parameters refused rather than ignored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from hub.settings import Settings

pytestmark = pytest.mark.anyio


async def test_to_bounds_the_export_and_unknown_parameters_are_refused(running_hub: Any, world: Any,
                                                                      settings: Settings) -> None:
    await world.user("exp-admin", "admin")
    today = datetime.now(UTC).date()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.api_port}") as http:
        res = await http.post("/api/auth/token", data={"username": "exp-admin", "password": "exp-admin-pw"})
        auth = {"Authorization": f"Bearer {res.json()['access_token']}"}
        for kind in ("alerts", "visits"):
            # docs/console.md documents from= and to=; `to` must decide the last day exported.
            last = today - timedelta(days=3)
            res = await http.get(f"/api/exports/{kind}.csv", headers=auth,
                                 params={"from": (today - timedelta(days=10)).isoformat(), "to": last.isoformat()})
            assert res.status_code == 200, res.text
            assert f'filename="{kind}-{today - timedelta(days=10)}-{last}.csv"' in res.headers["content-disposition"]
            bad = await http.get(f"/api/exports/{kind}.csv", headers=auth,
                                 params={"from": today.isoformat(), "to": (today - timedelta(days=1)).isoformat()})
            assert bad.status_code == 400 and "'from' is after 'to'" in bad.text
            # `end` (the old internal name) and typos are refused with the names that work.
            for unknown in ({"end": today.isoformat()}, {"form": today.isoformat()}):
                res = await http.get(f"/api/exports/{kind}.csv", headers=auth, params=unknown)
                assert res.status_code == 422, res.text
                problem = res.json()["detail"][0]
                assert problem["loc"] == ["query", next(iter(unknown))]
                assert "from, to" in problem["msg"]
    async with await psycopg.AsyncConnection.connect(settings.db_url) as conn:
        audited = await (await conn.execute("SELECT details FROM audit_log WHERE action = 'export.alerts'")).fetchall()
    assert audited == [({"rows": 0, "from": (today - timedelta(days=10)).isoformat(),
                         "to": (today - timedelta(days=3)).isoformat()},)]

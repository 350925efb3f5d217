"""Scope edges: LIKE wildcards in region paths, scoped admins managing accounts, and the audit log by scope."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg
import pytest

from hub.settings import Settings

pytestmark = pytest.mark.anyio

# `_` is LIKE's one-character wildcard: unescaped, a scope of sz/sec_t also matched sz/secxt.
NEAR = "sz/sec_t"
FAR = "sz/secxt"
OUT = "OUTSIDE"


async def _sql(db_url: str, query: str, params: Any = ()) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        cur = await conn.execute(query, params)
        return await cur.fetchall() if cur.description else []


async def _login(http: httpx.AsyncClient, username: str) -> dict[str, str]:
    res = await http.post("/api/auth/token", data={"username": username, "password": username + "-pw"})
    res.raise_for_status()
    return {"Authorization": f"Bearer {res.json()['access_token']}"}


@pytest.fixture
async def lookalikes(running_hub: Any, world: Any, settings: Settings) -> dict[str, int]:
    """Two districts whose paths differ only where the near one has `_`, each with a resident and an alert."""
    await world.region_tree()
    db = settings.db_url
    assert db is not None
    for district, tag in ((NEAR, "IN"), (FAR, OUT)):
        await _sql(db, "INSERT INTO regions (path, level, name) VALUES (%s, 'district', %s), (%s, 'community', %s)",
                   (district, tag, f"{district}/c1", tag))
        await _sql(db, "INSERT INTO households (id, region_path, address, lat, lon) VALUES"
                   " (%s, %s, %s, 22.5, 114.0)", (f"{tag}-H", f"{district}/c1", f"{tag} road 1"))
        await _sql(db, "INSERT INTO residents (id, household_id, name, birth_year, medical_notes) VALUES"
                   " (%s, %s, %s, 1940, %s)", (f"{tag}-R", f"{tag}-H", f"{tag} name", f"{tag} notes"))
        await _sql(db, "INSERT INTO alerts (resident_id, household_id, region_path, type, severity, first_ts,"
                   " last_ts) VALUES (%s, %s, %s, 'sos', 'critical', now(), now())",
                   (f"{tag}-R", f"{tag}-H", f"{district}/c1"))
    await world.user("op-near", "operator", scope_path=NEAR)
    await world.user("adm-near", "admin", scope_path=NEAR)
    await world.user("cw-near", "community_worker", scope_path=f"{NEAR}/c1")
    await world.user("cw-far", "community_worker", scope_path=f"{FAR}/c1")
    await world.user("fam-near", "family", resident_id="IN-R")
    await world.user("root", "admin")
    rows = await _sql(db, "SELECT username, id FROM users")
    return {name: int(uid) for name, uid in rows}


async def test_underscore_in_a_scope_is_not_a_wildcard(lookalikes: dict[str, int], settings: Settings) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.api_port}") as http:
        op = await _login(http, "op-near")
        for path in ("/api/residents", "/api/households", "/api/alerts", "/api/regions", "/api/users",
                     "/api/exports/alerts.csv"):
            res = await http.get(path, headers=op)
            assert res.status_code == 200, path
            assert OUT not in res.text and FAR not in res.text, path
            assert "IN" in res.text or path == "/api/users", path  # the near district is seen: a real check
        assert (await http.get("/api/residents/OUTSIDE-R", headers=op)).status_code == 404
        assert (await http.get("/api/households/OUTSIDE-H", headers=op)).status_code == 404

        root = await _login(http, "root")
        filtered = await http.get("/api/residents", params={"region_path": NEAR}, headers=root)
        assert [r["id"] for r in filtered.json()["items"]] == ["IN-R"]
        filtered = await http.get("/api/households", params={"region_path": NEAR}, headers=root)
        assert [h["id"] for h in filtered.json()["items"]] == ["IN-H"]
        # A worker scoped to sz/sec_t does not cover a household in sz/secxt.
        await _sql(settings.db_url, "UPDATE users SET scope_path = %s WHERE username = 'cw-near'", (NEAR,))
        res = await http.post("/api/residents", headers=root, json={
            "id": "OUTSIDE-R2", "household_id": "OUTSIDE-H", "name": "x", "birth_year": 1940,
            "community_worker_id": lookalikes["cw-near"], "contacts": []})
        assert res.status_code == 400, res.text
        assert "is not a community worker covering" in res.json()["detail"]
        # A literal search for `_` finds only names with `_` (none here), not every name.
        res = await http.get("/api/residents", params={"q": "_"}, headers=root)
        assert res.json()["items"] == []


async def test_scoped_admin_cannot_tie_an_account_to_a_resident_elsewhere(lookalikes: dict[str, int],
                                                                         settings: Settings) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.api_port}") as http:
        adm = await _login(http, "adm-near")
        attempts = [
            {"role": "family", "resident_id": "OUTSIDE-R"},
            # The old bypass: a scope_path inside the admin's scope made the new account visible, so it stuck.
            {"role": "family", "resident_id": "OUTSIDE-R", "scope_path": NEAR},
            {"role": "operator"},  # no scope at all: the whole platform
            {"role": "admin"},
            {"role": "community_worker", "scope_path": f"{FAR}/c1"},
        ]
        for i, extra in enumerate(attempts):
            res = await http.post("/api/users", headers=adm, json={
                "username": f"new{i}", "password": "long-enough-pw", **extra})
            assert res.status_code == 400, (extra, res.text)
        assert await _sql(settings.db_url, "SELECT username FROM users WHERE username LIKE 'new%%'") == []

        ok = await http.post("/api/users", headers=adm, json={
            "username": "fam-new", "password": "long-enough-pw", "role": "family", "resident_id": "IN-R"})
        assert ok.status_code == 201, ok.text
        fam_id = ok.json()["id"]
        assert (await http.get(f"/api/users/{fam_id}", headers=adm)).status_code == 200

        for target, change in ((fam_id, {"resident_id": "OUTSIDE-R"}),
                               (lookalikes["fam-near"], {"resident_id": "OUTSIDE-R"}),
                               (lookalikes["cw-near"], {"role": "family", "scope_path": None,
                                                        "resident_id": "OUTSIDE-R"}),
                               (lookalikes["cw-near"], {"scope_path": None}),
                               (lookalikes["cw-near"], {"scope_path": f"{FAR}/c1"})):
            res = await http.patch(f"/api/users/{target}", headers=adm, json=change)
            assert res.status_code == 400, (change, res.text)
        rows = await _sql(settings.db_url, "SELECT count(*) FROM users WHERE resident_id = 'OUTSIDE-R'"
                          " OR scope_path LIKE 'sz/secxt%%'")
        assert rows[0][0] == 1  # cw-far only
        # Accounts elsewhere stay invisible, so they cannot be changed either.
        assert (await http.patch(f"/api/users/{lookalikes['cw-far']}", headers=adm,
                                 json={"display_name": "x"})).status_code == 404
        # The family member tied to a resident elsewhere would have read that resident; none exists.
        fam = await _login(http, "fam-near")
        assert (await http.get("/api/residents/OUTSIDE-R", headers=fam)).status_code == 404


async def test_scoped_admin_sees_only_their_scope_in_the_audit_log(lookalikes: dict[str, int],
                                                                   settings: Settings) -> None:
    ids = lookalikes
    for username, target in (("cw-far", "alert:far"), ("root", "region:far"), ("cw-near", "alert:near"),
                             ("adm-near", "user:near"), ("fam-near", "alert:fam")):
        await _sql(settings.db_url, "INSERT INTO audit_log (user_id, action, target) VALUES (%s, 'test.act', %s)",
                   (ids[username], target))
    await _sql(settings.db_url, "INSERT INTO audit_log (user_id, action, target) VALUES (NULL, 'test.act', 'sys')")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.api_port}") as http:
        scoped = await http.get("/api/audit", params={"action": "test.act", "limit": 200},
                                headers=await _login(http, "adm-near"))
        assert scoped.status_code == 200
        assert sorted(e["target"] for e in scoped.json()["items"]) == ["alert:fam", "alert:near", "user:near"]
        by_far = await http.get("/api/audit", params={"user_id": ids["cw-far"]}, headers=await _login(http, "adm-near"))
        assert by_far.json()["items"] == []
        everything = await http.get("/api/audit", params={"action": "test.act", "limit": 200},
                                    headers=await _login(http, "root"))
        assert len(everything.json()["items"]) == 6

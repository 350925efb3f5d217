"""The SSE live feed: scope enforced in the query, resumable with Last-Event-ID, token by header or query."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

import httpx
import psycopg
import pytest

from alerts.store import feed
from tests.hub.api.conftest import IN_COMMUNITY, OUT_COMMUNITY, Scene

pytestmark = pytest.mark.anyio


async def _publish(scene: Scene, region: str, resident: str, n: int) -> None:
    async with await psycopg.AsyncConnection.connect(scene.db_url) as conn:
        await feed(conn, "alert", region, resident, {"alert_id": n, "change": "created", "severity": "critical"})


async def _read(res: httpx.Response, count: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    async for line in res.aiter_lines():
        if line.startswith("id: "):
            current["cursor"] = int(line[4:])
        elif line.startswith("data: "):
            current["data"] = json.loads(line[6:])
        elif line == "" and "data" in current:
            events.append(current)
            current = {}
            if len(events) == count:
                break
    return events


async def test_feed_streams_only_events_in_scope_and_resumes(scene: Scene) -> None:
    token = scene.headers["community_worker"]["Authorization"].removeprefix("Bearer ")
    async with httpx.AsyncClient(base_url=scene.base, timeout=10) as http:
        async with http.stream("GET", "/api/feed", params={"access_token": token}) as res:
            assert res.status_code == 200
            assert res.headers["content-type"].startswith("text/event-stream")
            await _publish(scene, OUT_COMMUNITY, "OUTSIDE-R", 1)
            await _publish(scene, IN_COMMUNITY, "IN-R", 2)
            await _publish(scene, OUT_COMMUNITY, "OUTSIDE-R", 3)
            await _publish(scene, IN_COMMUNITY, "IN-R", 4)
            first = await asyncio.wait_for(_read(res, 2), 5)
        assert [e["data"]["payload"]["alert_id"] for e in first] == [2, 4]
        assert all(e["data"]["region_path"] == IN_COMMUNITY for e in first)

        # Resume after the first event: the second is replayed, nothing out of scope.
        resume = str(first[0]["data"]["id"])
        async with http.stream("GET", "/api/feed", headers={**scene.headers["community_worker"],
                                                            "Last-Event-ID": resume}) as res:
            replay = await asyncio.wait_for(_read(res, 1), 5)
        assert replay[0]["data"]["payload"]["alert_id"] == 4
        assert replay[0]["cursor"] == first[1]["data"]["id"]

        # A family member sees only their resident; a bad token gets 401.
        async with http.stream("GET", "/api/feed", headers={**scene.headers["family"], "Last-Event-ID": "0"}) as res:
            family = await asyncio.wait_for(_read(res, 2), 5)
        assert {e["data"]["resident_id"] for e in family} == {"IN-R"}
        bad = await http.get("/api/feed", params={"access_token": "nope"})
        assert bad.status_code == 401


async def test_actions_are_audited(scene: Scene) -> None:
    alert_id = await scene.alert("in", severity="critical")
    async with httpx.AsyncClient(base_url=scene.base, timeout=10) as http:
        op = scene.headers["operator"]
        assert (await http.post(f"/api/alerts/{alert_id}/ack", json={}, headers=op)).status_code == 200
        res = await http.patch("/api/residents/IN-R", json={"risk_flags": ["living_alone", "dementia"]}, headers=op)
        assert res.status_code == 200 and res.json()["risk_flags"] == ["living_alone", "dementia"]
        csv = await http.get("/api/exports/alerts.csv", headers=scene.headers["community_worker"])
        assert csv.status_code == 200 and "OUTSIDE" not in csv.text and "IN-R" in csv.text
        audit = (await http.get("/api/audit", params={"limit": 200}, headers=scene.headers["admin"])).json()
    actions = {(e["username"], e["action"]) for e in audit["items"]}
    assert {("op-futian", "alert.ack"), ("op-futian", "resident.update"),
            ("cw-lianhua", "export.alerts")} <= actions


async def test_contract_create_resident_and_device_then_revoke(scene: Scene, running_hub: Any) -> None:
    op = scene.headers["operator"]
    async with httpx.AsyncClient(base_url=scene.base, timeout=10, headers=op) as http:
        household = {"id": "H9", "region_path": IN_COMMUNITY, "address": "莲花路9号", "lat": 22.55, "lon": 114.05}
        assert (await http.post("/api/households", json=household)).status_code == 201
        assert (await http.post("/api/households", json=household)).status_code == 200  # idempotent
        assert (await http.post("/api/households", json={**household, "address": "x"})).status_code == 409
        resident = {"id": "R9", "household_id": "H9", "name": "王奶奶", "birth_year": 1936,
                    "risk_flags": ["living_alone"], "contacts": [
                        {"name": "王小明", "relation": "son", "phone": "13811112222"},
                        {"name": "邻居", "relation": "neighbour", "phone": "13833334444"}]}
        assert (await http.post("/api/residents", json=resident)).status_code == 201
        assert (await http.post("/api/residents", json=resident)).status_code == 200
        detail = (await http.get("/api/residents/R9")).json()
        assert [c["name"] for c in detail["contacts"]] == ["王小明", "邻居"]
        res = await http.post("/api/devices", json={"id": "WB9", "type": "wristband", "resident_id": "R9"})
        assert res.status_code == 201, res.text
        body = res.json()
        assert body["mqtt_username"] == "WB9" and len(body["mqtt_password"]) >= 16
        assert (await http.post("/api/devices", json={"id": "WB9", "type": "wristband", "resident_id": "R9"})
                ).status_code == 409
        assert (await http.get("/api/devices/WB9")).json()["status"] == "active"
        assert (await http.delete("/api/devices/WB9")).status_code == 204
        assert (await http.get("/api/devices/WB9")).json()["status"] == "revoked"
        bad = await http.post("/api/devices", json={"id": "bad id!", "type": "wristband", "resident_id": "R9"})
        assert bad.status_code == 422 and "Traceback" not in bad.text
    assert running_hub.bindings._known["WB9"].active is False


async def _tokens(scene: Scene, users: int) -> list[tuple[str, str]]:
    """(token, community) for `users` fresh community workers, half in each community; tokens made directly."""
    out = []
    for n in range(users):
        community = IN_COMMUNITY if n % 2 == 0 else OUT_COMMUNITY
        rows = await scene.sql("INSERT INTO users (username, password_hash, role, scope_path)"
                               " VALUES (%s, '!', 'community_worker', %s) RETURNING id", (f"load-{n}", community))
        token = f"load-token-{n}-{scene.db_url[-8:]}"
        await scene.sql("INSERT INTO auth_tokens (token_hash, user_id, expires_at) VALUES (%s, %s, now() + interval"
                        " '1 hour')", (hashlib.sha256(token.encode()).digest(), rows[0][0]))
        out.append((token, community))
    return out


async def _db_load(scene: Scene) -> tuple[int, int]:
    """(committed transactions in the test database, scans of feed_events) as the statistics show them."""
    rows = await scene.sql(
        "SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),"
        " (SELECT COALESCE(idx_scan, 0) + seq_scan FROM pg_stat_user_tables WHERE relname = 'feed_events')")
    return int(rows[0][0]), int(rows[0][1])


async def _window(scene: Scene, events: int, seconds: float) -> tuple[int, int]:
    """Publish `events` alerts (alternating communities) over `seconds`; the database load they caused."""
    await asyncio.sleep(STATS_SETTLE_S)  # backends report statistics up to 10 s late (PostgreSQL 15)
    xacts, scans = await _db_load(scene)
    for n in range(events):
        region, resident = (IN_COMMUNITY, "IN-R") if n % 2 == 0 else (OUT_COMMUNITY, "OUTSIDE-R")
        await _publish(scene, region, resident, 1000 + n)
        await asyncio.sleep(seconds / events)
    await asyncio.sleep(STATS_SETTLE_S)
    xacts_after, scans_after = await _db_load(scene)
    return xacts_after - xacts, scans_after - scans


STATS_SETTLE_S = 11.0


async def test_database_load_does_not_grow_with_the_number_of_streams(scene: Scene, running_hub: Any) -> None:
    """One stream or 200: the same queries; every stream still gets exactly the events in its scope."""
    tokens = await _tokens(scene, 25)
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
    async with httpx.AsyncClient(base_url=scene.base, timeout=60, limits=limits) as http:
        async def stream(token: str, got: list[int], ready: asyncio.Event) -> None:
            async with http.stream("GET", "/api/feed", params={"access_token": token}) as res:
                assert res.status_code == 200
                async for line in res.aiter_lines():
                    if line.startswith(": feed"):
                        ready.set()
                    elif line.startswith("data: "):
                        got.append(json.loads(line[6:])["payload"]["alert_id"])

        async def open_streams(count: int) -> tuple[list[asyncio.Task[None]], list[tuple[str, list[int]]]]:
            tasks, seen = [], []
            for n in range(count):
                token, community = tokens[n // 8]
                got: list[int] = []
                ready = asyncio.Event()
                tasks.append(asyncio.create_task(stream(token, got, ready)))
                await asyncio.wait_for(ready.wait(), 30)
                seen.append((community, got))
            return tasks, seen

        figures = {}
        for count in (1, 200):
            tasks, seen = await open_streams(count)
            try:
                xacts, scans = await _window(scene, 20, 4.0)  # its settling time lets every stream catch up
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            for community, got in seen:
                wanted = [1000 + n for n in range(20) if (n % 2 == 0) == (community == IN_COMMUNITY)]
                assert got == wanted
            figures[count] = (xacts, scans)
            print(f"\nFEED LOAD streams={count} events=20 window=4s+settle: {xacts} transactions,"
                  f" {scans} feed_events scans")
    # The publisher's 20 transactions plus the listener's reads and the hub's own background work; per-stream
    # polling (the old feed, 2 reads a second per stream) would add about 1,600 scans with 200 streams.
    (xacts1, scans1), (xacts200, scans200) = figures[1], figures[200]
    assert scans200 <= scans1 + 20
    assert xacts200 <= xacts1 + 60


async def _lines(res: httpx.Response) -> list[str]:
    return [line async for line in res.aiter_lines()]


async def test_a_revoked_login_ends_its_stream(scene: Scene, monkeypatch: pytest.MonkeyPatch) -> None:
    """All streams' tokens are checked together by the broadcaster; a logged-out one's stream ends."""
    from hub.api.routes import feed as feed_route

    monkeypatch.setattr(feed_route, "RECHECK_TOKEN_S", 0.2)
    monkeypatch.setattr(feed_route, "SAFETY_FETCH_S", 0.2)
    worker = scene.headers["community_worker"]
    async with httpx.AsyncClient(base_url=scene.base, timeout=30) as http:
        other = await scene.token("op-futian")
        async with http.stream("GET", "/api/feed", headers=worker) as res, \
                http.stream("GET", "/api/feed", headers=other) as kept:
            assert (res.status_code, kept.status_code) == (200, 200)
            assert (await http.post("/api/auth/logout", headers=worker)).status_code in (200, 204)
            # The server closes the stream (a hang here means the revoked login kept streaming).
            lines = await asyncio.wait_for(_lines(res), 10)
            assert lines[0] == "retry: 2000"
            await _publish(scene, IN_COMMUNITY, "IN-R", 7)
            [event] = await asyncio.wait_for(_read(kept, 1), 10)
    assert event["data"]["payload"]["alert_id"] == 7

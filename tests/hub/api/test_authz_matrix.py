"""Every route × every role × in-scope and out-of-scope targets: who gets 2xx, 401, 403 or 404.

A new endpoint without an entry in MATRIX fails `test_every_route_has_an_entry`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import params
from fastapi.routing import APIRoute
from starlette.routing import Mount

from hub.api.app import create_app
from tests.hub.api.conftest import OUT, USERS, Scene

pytestmark = pytest.mark.anyio

ALL = frozenset(USERS)
STAFF = frozenset({"admin", "operator", "community_worker"})
MANAGERS = frozenset({"admin", "operator"})
ADMIN = frozenset({"admin"})
OK = frozenset({200, 201, 202, 204})


@dataclass
class Req:
    """One concrete request."""

    path: str
    json: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] | None = None
    files: dict[str, Any] | None = None


Make = Callable[[Scene, str, str], Awaitable[Req]]


@dataclass(frozen=True)
class Case:
    """Who may call a route; `scoped` routes are tried on an in-scope and an out-of-scope target."""

    roles: frozenset[str]
    make: Make
    scoped: bool = True
    stream: bool = False
    ok: frozenset[int] = frozenset({200, 201, 202, 204})


def fixed(path: str, **params: Any) -> Make:
    """A route without a target."""
    async def make(s: Scene, role: str, target: str) -> Req:
        return Req(path, params=params)
    return make


def unscoped(roles: frozenset[str], path: str, **params: Any) -> Case:
    """A list or summary route: the scope shows in what it returns, not in its status."""
    return Case(roles, fixed(path, **params), scoped=False)


async def _alert_req(s: Scene, role: str, target: str, suffix: str, body: Any) -> Req:
    return Req(f"/api/alerts/{await s.alert(target)}{suffix}", json=body)


def alert(suffix: str, body: Any = None) -> Make:
    """A fresh alert per call, so state-changing actions never collide."""
    async def make(s: Scene, role: str, target: str) -> Req:
        return await _alert_req(s, role, target, suffix, body)
    return make


def escalation(suffix: str, body: Any = None, accepted: bool = False, prefix: str = "/api/escalations") -> Make:
    """A fresh alert, optionally already accepted by the caller."""
    async def make(s: Scene, role: str, target: str) -> Req:
        responder = s.user_ids[USERS[role][0]] if accepted else None
        return Req(f"{prefix}/{await s.alert(target, responder=responder)}{suffix}", json=body)
    return make


def resident(suffix: str = "", body: Any = None, **params: Any) -> Make:
    """The seeded resident in or out of scope."""
    async def make(s: Scene, role: str, target: str) -> Req:
        return Req(f"/api/residents/{s.resident(target)}{suffix}", json=body, params=params)
    return make


def history(kind: str) -> Make:
    """History of the seeded resident."""
    async def make(s: Scene, role: str, target: str) -> Req:
        return Req(f"/api/history/{s.resident(target)}/{kind}")
    return make


def device(suffix: str = "", body: Any = None) -> Make:
    """A fresh device per call (revocation and rotation change it)."""
    async def make(s: Scene, role: str, target: str) -> Req:
        return Req(f"/api/devices/{await s.device(target)}{suffix}", json=body)
    return make


async def _rebind(s: Scene, role: str, target: str) -> Req:
    return Req(f"/api/devices/{await s.device(target)}", json={"resident_id": s.resident(target), "room": "bed"})


async def _new_region(s: Scene, role: str, target: str) -> Req:
    parent = "sz/futian" if target == "in" else "sz/nanshan"
    return Req("/api/regions", json={"path": f"{parent}/c{next(s.seq)}", "level": "community", "name": "新社区"})


async def _new_household(s: Scene, role: str, target: str) -> Req:
    return Req("/api/households", json={"id": s.fresh("H", target), "region_path": s.community(target),
                                        "address": "2 Test Road", "lat": 22.5, "lon": 114.0})


async def _household(s: Scene, role: str, target: str) -> Req:
    return Req(f"/api/households/{s.household(target)}")


async def _patch_household(s: Scene, role: str, target: str) -> Req:
    return Req(f"/api/households/{s.household(target)}", json={"lat": 22.56})


async def _new_resident(s: Scene, role: str, target: str) -> Req:
    return Req("/api/residents", json={
        "id": s.fresh("R", target), "household_id": s.household(target), "name": "张三", "birth_year": 1940,
        "risk_flags": ["living_alone"], "contacts": [{"name": "李四", "relation": "son", "phone": "13900000000"}]})


async def _new_device(s: Scene, role: str, target: str) -> Req:
    return Req("/api/devices", json={"id": s.fresh("D", target), "type": "wristband",
                                     "resident_id": s.resident(target)})


async def _plan(s: Scene, role: str, target: str) -> Req:
    return Req("/api/visits/plans", json={"resident_id": s.resident(target)})


async def _visit(s: Scene, role: str, target: str) -> Req:
    return Req("/api/visits", json={"resident_id": s.resident(target), "outcome": "well"})


def _scoped_user(s: Scene, target: str) -> int:
    return s.user_ids["cw-lianhua" if target == "in" else f"cw-{OUT}"]


async def _user(s: Scene, role: str, target: str) -> Req:
    return Req(f"/api/users/{_scoped_user(s, target)}")


async def _patch_user(s: Scene, role: str, target: str) -> Req:
    return Req(f"/api/users/{_scoped_user(s, target)}", json={"display_name": "王五"})


async def _new_user(s: Scene, role: str, target: str) -> Req:
    return Req("/api/users", json={"username": s.fresh("u", target).lower(), "password": "long-enough-pw",
                                   "role": "community_worker", "scope_path": s.community(target)})


async def _assign(s: Scene, role: str, target: str) -> Req:
    return Req(f"/api/escalations/{await s.alert(target)}/assign", json={"user_id": _scoped_user(s, target)})


async def _dispatch_outcome(s: Scene, role: str, target: str) -> Req:
    from alerts.dispatch import DISPATCH_OUTCOMES

    return Req(f"/api/alerts/{await s.alert(target)}/dispatches/999999/outcome",
               json={"outcome": DISPATCH_OUTCOMES[0]})


async def _start_import(s: Scene, role: str, target: str) -> Req:
    return Req("/api/imports", files={"file": ("roster.csv", "resident_id,name,household_id,community\n")})


async def _import_job(s: Scene, role: str, target: str, suffix: str = "") -> Req:
    owner = USERS[role][0] if target == "in" else f"cw-{OUT}"
    rows = await s.sql("INSERT INTO import_jobs (created_by, filename, dry_run, state) VALUES (%s, 'r.csv', true,"
                       " 'done') RETURNING id", (s.user_ids[owner],))
    return Req(f"/api/imports/{rows[0][0]}{suffix}")


async def _import_credentials(s: Scene, role: str, target: str) -> Req:
    return await _import_job(s, role, target, "/credentials")


async def _qr(s: Scene, role: str, target: str) -> Req:
    return Req("/api/qr", json={"text": "WB1:secret"})


async def _outline(s: Scene, role: str, target: str) -> Req:
    return Req(f"/api/regions/{s.community(target)}/outline",
               json={"polygon": [[114.05, 22.54], [114.06, 22.54], [114.06, 22.55]]})


async def _logout(s: Scene, role: str, target: str) -> Req:
    # Logging out revokes the token, so each call gets its own.
    return Req("/api/auth/logout", headers=await s.token(USERS[role][0]))


MATRIX: dict[tuple[str, str], Case | None] = {
    # None: public, no login needed.
    ("GET", "/health"): None,
    ("GET", "/health/live"): None,
    ("GET", "/health/ready"): None,
    ("GET", "/metrics"): None,  # aggregate counts only; see hub/api/routes/metrics.py
    ("POST", "/api/auth/token"): None,
    ("GET", "/"): None,
    ("GET", "/console"): None,
    ("GET", "/openapi.json"): None,
    ("GET", "/docs"): None,
    ("GET", "/docs/oauth2-redirect"): None,
    ("GET", "/redoc"): None,
    ("MOUNT", "/static"): None,
    # Signed action links and SMS replies: no login, each checked by its signature or shared secret
    # (tests/hub/api/test_actions.py).
    ("GET", "/a/{alert_id}/{token}"): None,
    ("POST", "/a/{alert_id}/{token}"): None,
    ("POST", "/a/sms-inbound"): None,
    ("GET", "/api/auth/me"): unscoped(ALL, "/api/auth/me"),
    ("POST", "/api/auth/logout"): Case(ALL, _logout, scoped=False),
    ("GET", "/api/alerts"): unscoped(ALL, "/api/alerts"),
    ("GET", "/api/alerts/{alert_id}"): Case(ALL, alert("")),
    ("GET", "/api/alerts/{alert_id}/timeline"): Case(ALL, alert("/timeline")),
    ("POST", "/api/alerts/{alert_id}/ack"): Case(ALL, alert("/ack", {"via": "console"})),
    ("POST", "/api/alerts/{alert_id}/comment"): Case(ALL, alert("/comment", {"text": "called the son"})),
    # Resolving is closing: the same rule (a community worker accepts first), see test_lifecycle.py.
    ("POST", "/api/alerts/{alert_id}/resolve"): Case(
        STAFF, escalation("/resolve", {"resolution": "false_alarm"}, accepted=True, prefix="/api/alerts")),
    # Routes of the alert-engine module (dispatch to 120/110, policies, SLA).
    ("POST", "/api/alerts/{alert_id}/confirm-emergency"): Case(MANAGERS, alert("/confirm-emergency", {})),
    ("GET", "/api/alerts/{alert_id}/dispatches"): Case(STAFF, alert("/dispatches")),
    # No dispatch exists on a fresh alert: in scope the route answers 404 for the dispatch, out of scope for the alert.
    ("POST", "/api/alerts/{alert_id}/dispatches/{dispatch_id}/outcome"): Case(
        MANAGERS, _dispatch_outcome, ok=frozenset({404})),
    ("GET", "/api/policies"): unscoped(MANAGERS, "/api/policies"),
    ("POST", "/api/policies/validate"): Case(MANAGERS, fixed("/api/policies/validate"), scoped=False,
                                             ok=frozenset({200, 422})),
    ("GET", "/api/sla"): unscoped(STAFF, "/api/sla"),
    ("GET", "/api/regions"): unscoped(STAFF, "/api/regions"),
    ("POST", "/api/regions"): Case(MANAGERS, _new_region),
    ("GET", "/api/households"): unscoped(STAFF, "/api/households"),
    ("GET", "/api/households/{household_id}"): Case(ALL, _household),
    ("POST", "/api/households"): Case(MANAGERS, _new_household),
    ("PATCH", "/api/households/{household_id}"): Case(STAFF, _patch_household),
    ("GET", "/api/residents"): unscoped(ALL, "/api/residents"),
    ("GET", "/api/residents/{resident_id}"): Case(ALL, resident()),
    ("POST", "/api/residents"): Case(MANAGERS, _new_resident),
    ("PATCH", "/api/residents/{resident_id}"): Case(STAFF, resident("", {"medical_notes": "高血压"})),
    ("GET", "/api/residents/{resident_id}/safe-zones"): Case(ALL, resident("/safe-zones")),
    ("PUT", "/api/residents/{resident_id}/safe-zones"): Case(STAFF, resident(
        "/safe-zones", {"zones": [{"name": "home", "lat": 22.55, "lon": 114.05, "radius_m": 300}]})),
    ("PUT", "/api/residents/{resident_id}/contacts"): Case(STAFF, resident(
        "/contacts", {"contacts": [{"name": "女儿", "relation": "daughter", "phone": "13700000000"}]})),
    ("GET", "/api/devices"): unscoped(ALL, "/api/devices"),
    ("GET", "/api/fleet/health"): unscoped(STAFF, "/api/fleet/health"),
    ("GET", "/api/devices/{device_id}"): Case(ALL, device()),
    ("POST", "/api/devices"): Case(MANAGERS, _new_device),
    ("POST", "/api/devices/{device_id}/credentials"): Case(MANAGERS, device("/credentials")),
    ("PATCH", "/api/devices/{device_id}"): Case(MANAGERS, _rebind),
    ("DELETE", "/api/devices/{device_id}"): Case(MANAGERS, device()),
    ("GET", "/api/history/{resident_id}/activity"): Case(ALL, history("activity")),
    ("GET", "/api/history/{resident_id}/vitals"): Case(ALL, history("vitals")),
    ("GET", "/api/visits/week"): unscoped(STAFF, "/api/visits/week"),
    ("GET", "/api/visits/plans"): unscoped(STAFF, "/api/visits/plans"),
    ("POST", "/api/visits/plans"): Case(STAFF, _plan),
    ("GET", "/api/visits"): unscoped(STAFF, "/api/visits"),
    ("POST", "/api/visits"): Case(STAFF, _visit),
    ("GET", "/api/users"): unscoped(MANAGERS, "/api/users"),
    ("GET", "/api/users/{user_id}"): Case(MANAGERS, _user),
    ("POST", "/api/users"): Case(ADMIN, _new_user),
    ("PATCH", "/api/users/{user_id}"): Case(ADMIN, _patch_user),
    ("GET", "/api/feed"): Case(ALL, fixed("/api/feed"), scoped=False, stream=True),
    ("GET", "/api/audit"): unscoped(ADMIN, "/api/audit"),
    ("GET", "/api/exports/alerts.csv"): unscoped(STAFF, "/api/exports/alerts.csv"),
    ("GET", "/api/exports/visits.csv"): unscoped(STAFF, "/api/exports/visits.csv"),
    ("GET", "/api/dead-letters"): unscoped(MANAGERS, "/api/dead-letters"),
    ("GET", "/api/escalations"): unscoped(STAFF, "/api/escalations", view="open"),
    ("POST", "/api/escalations/{alert_id}/assign"): Case(MANAGERS, _assign),
    # Console administration: roster imports (a job is its creator's; platform-wide admins see all), the
    # overview, QR codes for credentials, community outlines.
    ("GET", "/api/imports/template.{fmt}"): unscoped(MANAGERS, "/api/imports/template.csv"),
    ("POST", "/api/imports"): Case(MANAGERS, _start_import, scoped=False, ok=frozenset({202})),
    ("GET", "/api/imports"): unscoped(MANAGERS, "/api/imports"),
    ("GET", "/api/imports/{job_id}"): Case(MANAGERS, _import_job),
    # No passwords were issued by these jobs: 410 for the owner.
    ("GET", "/api/imports/{job_id}/credentials"): Case(MANAGERS, _import_credentials, scoped=False,
                                                        ok=frozenset({410})),
    ("GET", "/api/overview"): unscoped(STAFF, "/api/overview"),
    ("POST", "/api/qr"): Case(MANAGERS, _qr, scoped=False),
    ("PUT", "/api/regions/{path:path}/outline"): Case(MANAGERS, _outline),
    ("POST", "/api/escalations/{alert_id}/accept"): Case(STAFF, escalation("/accept", {})),
    ("POST", "/api/escalations/{alert_id}/progress"): Case(
        STAFF, escalation("/progress", {"state": "on_the_way"}, accepted=True)),
    ("POST", "/api/escalations/{alert_id}/close"): Case(
        STAFF, escalation("/close", {"resolution": "resident_fine"}, accepted=True)),
}


def flatten(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(full path, route) for every route, looking inside included routers (FastAPI may keep them nested)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from flatten(inner.routes, prefix + route.include_context.prefix)
        else:
            yield prefix + route.path, route


def app_routes(hub: Any) -> set[tuple[str, str]]:
    """Every (method, path) the application serves."""
    found: set[tuple[str, str]] = set()
    for path, route in flatten(create_app(hub).routes):
        if isinstance(route, Mount):
            found.add(("MOUNT", path))
        else:
            for method in getattr(route, "methods", None) or {"GET"}:
                if method != "HEAD":
                    found.add((method, path))
    return found


async def test_every_route_has_an_entry(running_hub: Any) -> None:
    routes = app_routes(running_hub)
    missing = sorted(routes - MATRIX.keys())
    stale = sorted(MATRIX.keys() - routes)
    assert not missing, f"routes without an authorization entry in MATRIX: {missing}"
    assert not stale, f"MATRIX entries for routes that no longer exist: {stale}"


async def _send(http: httpx.AsyncClient, method: str, req: Req, headers: dict[str, str], stream: bool
                ) -> tuple[int, str]:
    if stream:
        async with http.stream(method, req.path, params=req.params, headers=headers) as res:
            return res.status_code, ""
    if req.files is not None:
        res = await http.request(method, req.path, files=req.files, params=req.params, headers=headers)
        return res.status_code, res.text
    res = await http.request(method, req.path, json=req.json, params=req.params, headers=headers)
    return res.status_code, res.text


def _expected(case: Case, role: str, target: str) -> set[int]:
    if role not in case.roles:
        return {403}
    if target == "out" and role != "admin":
        return {404}
    return set(case.ok)


async def test_authorization_matrix(scene: Scene, running_hub: Any) -> None:
    failures: list[str] = []
    checked = 0
    async with httpx.AsyncClient(base_url=scene.base, timeout=10) as http:
        for (method, path), case in sorted(MATRIX.items()):
            if case is None:
                status, _ = await _send(http, method if method != "MOUNT" else "GET",
                                        Req(path if method != "MOUNT" else "/static/console.js"), {}, False)
                if status >= 500 or status in {401, 403}:
                    failures.append(f"public {method} {path}: {status}")
                checked += 1
                continue
            anon = await case.make(scene, "admin", "in")
            status, _ = await _send(http, method, anon, {}, case.stream)
            checked += 1
            if status != 401:
                failures.append(f"{method} {path} without a token: {status}, expected 401")
            for role in sorted(USERS):
                for target in ("in", "out") if case.scoped else ("in",):
                    req = await case.make(scene, role, target)
                    status, text = await _send(http, method, req, req.headers or scene.headers[role], case.stream)
                    checked += 1
                    expected = _expected(case, role, target)
                    if status not in expected:
                        failures.append(f"{method} {req.path} as {role} ({target} of scope): {status} "
                                        f"not in {sorted(expected)}: {text[:200]}")
                    elif role != "admin" and status in case.ok and OUT in text:
                        failures.append(f"{method} {req.path} as {role} leaks an out-of-scope object: {text[:300]}")
    assert not failures, "\n".join(failures)
    # 4 roles × (in + out) for scoped routes, plus anonymous and public requests.
    assert checked > 300


async def test_bodies_forbid_unknown_fields_and_pages_are_bounded(running_hub: Any) -> None:
    for _, route in flatten(create_app(running_hub).routes):
        if not isinstance(route, APIRoute):
            continue
        body = route.body_field
        # Forms (the OAuth2 login) follow the OAuth2 spec, which allows extra fields.
        if body is not None and not isinstance(body.field_info, params.Form) \
                and hasattr(body.field_info.annotation, "model_config"):
            config = body.field_info.annotation.model_config  # type: ignore[union-attr]
            assert config.get("extra") == "forbid", f"{route.path}: body accepts unknown fields"
        for param in route.dependant.query_params:
            if param.name == "limit":
                bounds = {type(m).__name__: m for m in param.field_info.metadata}
                assert "Le" in bounds and bounds["Le"].le <= 200, f"{route.path}: limit is unbounded"


async def test_unknown_field_is_rejected_with_a_clear_message(scene: Scene) -> None:
    async with httpx.AsyncClient(base_url=scene.base, headers=scene.headers["admin"]) as http:
        res = await http.post("/api/regions", json={"path": "sz/x", "level": "district", "name": "x", "colour": 1})
        too_many = await http.get("/api/residents", params={"limit": 1000})
        bad_cursor = await http.get("/api/feed", headers={"Last-Event-ID": "abc"})
    assert res.status_code == 422
    assert res.json()["detail"][0]["loc"] == ["body", "colour"]
    assert "Traceback" not in res.text
    assert too_many.status_code == 422
    assert bad_cursor.status_code == 400

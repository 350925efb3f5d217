"""API security against a running hub: CORS only for configured origins, headers, token expiry, login limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from hub.api.routes.auth import IP_LOGINS_PER_MINUTE
from hub.errors import ConfigError
from hub.settings import Settings, load_settings

pytestmark = pytest.mark.anyio
CONSOLE = "https://console.example.org"
EXPECTED_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """The shared test settings, with this test's overrides (indirect parametrisation)."""
    return load_settings(**{**settings.model_dump(exclude_unset=True), **getattr(request, "param", {})})


def _base(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.api_port}"


async def _admin(world: Any, settings: Settings) -> dict[str, str]:
    await world.user("sec-admin", "admin")
    async with httpx.AsyncClient(base_url=_base(settings)) as http:
        res = await http.post("/api/auth/token", data={"username": "sec-admin", "password": "sec-admin-pw"})
        res.raise_for_status()
        return {"Authorization": f"Bearer {res.json()['access_token']}"}


async def test_no_cors_headers_by_default(running_hub: Any, world: Any, settings: Settings) -> None:
    headers = await _admin(world, settings)
    async with httpx.AsyncClient(base_url=_base(settings)) as http:
        res = await http.get("/api/auth/me", headers={**headers, "Origin": CONSOLE})
        assert res.status_code == 200
        assert "access-control-allow-origin" not in res.headers
        preflight = await http.options("/api/auth/me", headers={
            "Origin": CONSOLE, "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization"})
        assert "access-control-allow-origin" not in preflight.headers


@pytest.mark.parametrize("settings", [{"cors_origins": f"{CONSOLE}, https://ops.example.org:8443/",
                                       "api_https": True}], indirect=True)
async def test_cors_only_for_configured_origins(running_hub: Any, world: Any, settings: Settings) -> None:
    headers = await _admin(world, settings)
    async with httpx.AsyncClient(base_url=_base(settings)) as http:
        for origin in (CONSOLE, "https://ops.example.org:8443"):
            res = await http.get("/api/auth/me", headers={**headers, "Origin": origin})
            assert res.headers["access-control-allow-origin"] == origin
            assert "access-control-allow-credentials" not in res.headers
            preflight = await http.options("/api/alerts", headers={
                "Origin": origin, "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization"})
            assert preflight.status_code == 200
            assert preflight.headers["access-control-allow-origin"] == origin
            assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        for stranger in ("https://evil.example.org", "http://console.example.org", "null"):
            res = await http.get("/api/auth/me", headers={**headers, "Origin": stranger})
            assert "access-control-allow-origin" not in res.headers
            preflight = await http.options("/api/alerts", headers={
                "Origin": stranger, "Access-Control-Request-Method": "GET"})
            assert preflight.status_code == 400
            assert "access-control-allow-origin" not in preflight.headers


@pytest.mark.parametrize("origins", ["*", "console.example.org", "https://console.example.org/app",
                                     "ftp://x.example.org"])
def test_cors_origins_must_be_real_origins(origins: str) -> None:
    with pytest.raises(ConfigError, match="ELDERCARE_CORS_ORIGINS"):
        load_settings(cors_origins=origins)


async def test_security_headers_on_every_kind_of_response(running_hub: Any, world: Any, settings: Settings) -> None:
    headers = await _admin(world, settings)
    async with httpx.AsyncClient(base_url=_base(settings)) as http:
        responses = [
            await http.get("/api/auth/me", headers=headers),      # 200 JSON
            await http.get("/api/auth/me"),                       # 401
            await http.get("/api/alerts/999999", headers=headers),  # 404
            await http.get("/api/alerts/not-a-number", headers=headers),  # 422
            await http.get("/console"),                           # the dashboard page
            await http.get("/health/live"),
        ]
    for res in responses:
        for name, value in EXPECTED_HEADERS.items():
            assert res.headers.get(name) == value, (res.request.url, name)
        assert "frame-ancestors 'none'" in res.headers["content-security-policy"]
        # Plain HTTP by default: HSTS would lock browsers out of the console until it expired.
        assert "strict-transport-security" not in res.headers
    assert "traceback" not in responses[3].text.lower()


@pytest.mark.parametrize("settings", [{"api_https": True}], indirect=True)
async def test_hsts_when_served_over_https(running_hub: Any, settings: Settings) -> None:
    async with httpx.AsyncClient(base_url=_base(settings)) as http:
        res = await http.get("/api/auth/me")
    assert res.status_code == 401
    assert res.headers["strict-transport-security"].startswith("max-age=31536000")


@pytest.mark.parametrize("settings", [{"token_ttl_minutes": 5}], indirect=True)
async def test_tokens_expire_and_logout_revokes(running_hub: Any, world: Any, settings: Settings) -> None:
    await world.user("sec-op", "operator")
    async with httpx.AsyncClient(base_url=_base(settings)) as http:
        res = await http.post("/api/auth/token", data={"username": "sec-op", "password": "sec-op-pw"})
        body = res.json()
        assert body["expires_in"] == 300
        auth = {"Authorization": f"Bearer {body['access_token']}"}
        assert (await http.get("/api/auth/me", headers=auth)).status_code == 200
        async with await psycopg.AsyncConnection.connect(settings.db_url, autocommit=True) as conn:
            expires = (await (await conn.execute("SELECT max(expires_at) FROM auth_tokens")).fetchone())[0]
            assert abs(expires - (datetime.now(UTC) + timedelta(minutes=5))) < timedelta(seconds=30)
            await conn.execute("UPDATE auth_tokens SET expires_at = now() - interval '1 second'")
        expired = await http.get("/api/auth/me", headers=auth)
        assert expired.status_code == 401
        assert expired.headers["www-authenticate"] == "Bearer"

        second = (await http.post("/api/auth/token", data={"username": "sec-op", "password": "sec-op-pw"})).json()
        auth = {"Authorization": f"Bearer {second['access_token']}"}
        assert (await http.post("/api/auth/logout", headers=auth)).status_code == 204
        assert (await http.get("/api/auth/me", headers=auth)).status_code == 401
        for forged in ("Bearer " + "A" * 43, "Bearer", "Basic c2VjLW9wOnNlYy1vcC1wdw=="):
            assert (await http.get("/api/auth/me", headers={"Authorization": forged})).status_code == 401


async def test_login_failures_do_not_say_which_part_was_wrong(running_hub: Any, world: Any,
                                                               settings: Settings) -> None:
    await world.user("sec-fam-worker", "operator")
    async with httpx.AsyncClient(base_url=_base(settings)) as http:
        wrong_password = await http.post("/api/auth/token", data={"username": "sec-fam-worker", "password": "x"})
        unknown_user = await http.post("/api/auth/token", data={"username": "nobody-here", "password": "x"})
    assert wrong_password.status_code == unknown_user.status_code == 401
    assert wrong_password.json() == unknown_user.json()


async def test_login_is_rate_limited_per_username(running_hub: Any, world: Any, settings: Settings) -> None:
    await world.user("sec-target", "operator")
    await world.user("sec-bystander", "operator")
    good = {"username": "sec-target", "password": "sec-target-pw"}
    async with httpx.AsyncClient(base_url=_base(settings)) as http:
        # A success resets the count, so a user who mistypes now and then is never locked out.
        for _ in range(5):
            assert (await http.post("/api/auth/token", data={**good, "password": "guess"})).status_code == 401
        assert (await http.post("/api/auth/token", data=good)).status_code == 200
        statuses = [(await http.post("/api/auth/token", data={**good, "password": f"guess{i}"})).status_code
                    for i in range(12)]
        assert statuses[:10] == [401] * 10
        assert statuses[10:] == [429, 429]
        # Locked even with the right password: a guesser cannot tell when it found it.
        locked = await http.post("/api/auth/token", data=good)
        assert locked.status_code == 429
        assert "access_token" not in locked.text
        # Other accounts from the same address are not affected.
        other = await http.post("/api/auth/token", data={"username": "sec-bystander", "password": "sec-bystander-pw"})
        assert other.status_code == 200


async def test_login_is_rate_limited_per_client_address(running_hub: Any, world: Any, settings: Settings) -> None:
    await world.user("sec-late", "operator")
    async with httpx.AsyncClient(base_url=_base(settings)) as http:
        # A spray of distinct usernames from one address: each name stays under its own limit.
        statuses = [(await http.post("/api/auth/token", data={"username": f"spray{i}", "password": "x"})).status_code
                    for i in range(IP_LOGINS_PER_MINUTE)]
        assert set(statuses) == {401}
        res = await http.post("/api/auth/token", data={"username": "sec-late", "password": "sec-late-pw"})
        assert res.status_code == 429

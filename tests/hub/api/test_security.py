"""API security against a running hub: CORS only for configured origins, headers, token expiry, login limits."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from hub.errors import ConfigError
from hub.ratelimit import ThrottlePolicy
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
        csp = dict(d.strip().split(" ", 1) for d in res.headers["content-security-policy"].split(";"))
        assert csp["frame-ancestors"] == "'none'"
        # The console has no inline script: an injected <script> or onclick= attribute must not run.
        assert csp["script-src"] == "'self'"
        assert csp["object-src"] == "'none'"
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


def _from(address: str) -> httpx.AsyncHTTPTransport:
    """A client whose connections come from another loopback address (all of 127/8 is local on Linux)."""
    return httpx.AsyncHTTPTransport(local_address=address)


async def test_failed_logins_back_off_per_user_and_address(running_hub: Any, world: Any, settings: Settings) -> None:
    await world.user("sec-target", "operator")
    await world.user("sec-bystander", "operator")
    good = {"username": "sec-target", "password": "sec-target-pw"}
    free = ThrottlePolicy().free_failures
    async with httpx.AsyncClient(base_url=_base(settings)) as http:
        # A success clears the count, so a user who mistypes now and then never waits.
        for _ in range(free - 1):
            assert (await http.post("/api/auth/token", data={**good, "password": "guess"})).status_code == 401
        assert (await http.post("/api/auth/token", data=good)).status_code == 200
        statuses = [(await http.post("/api/auth/token", data={**good, "password": f"guess{i}"})).status_code
                    for i in range(free + 2)]
        assert statuses[:free] == [401] * free
        assert statuses[free:] == [429, 429]
        # Refused even with the right password: a guesser cannot tell when it found it.
        locked = await http.post("/api/auth/token", data=good)
        assert locked.status_code == 429
        assert "access_token" not in locked.text
        assert int(locked.headers["retry-after"]) >= 1
        # Other accounts from the same address are not affected.
        other = await http.post("/api/auth/token", data={"username": "sec-bystander", "password": "sec-bystander-pw"})
        assert other.status_code == 200


async def test_a_guesser_cannot_lock_the_user_out_from_elsewhere(running_hub: Any, world: Any,
                                                                  settings: Settings) -> None:
    await world.user("sec-victim", "operator")
    async with httpx.AsyncClient(base_url=_base(settings), transport=_from("127.0.0.2")) as attacker:
        statuses = [(await attacker.post("/api/auth/token", data={"username": "sec-victim", "password": f"g{i}"}))
                    .status_code for i in range(30)]
        assert statuses.count(429) >= 20  # the guesser is held back
    async with httpx.AsyncClient(base_url=_base(settings), transport=_from("127.0.0.3")) as victim:
        res = await victim.post("/api/auth/token", data={"username": "sec-victim", "password": "sec-victim-pw"})
        assert res.status_code == 200, res.text


async def test_login_is_rate_limited_per_client_address(running_hub: Any, world: Any, settings: Settings) -> None:
    await world.user("sec-late", "operator")
    per_address = ThrottlePolicy().per_address_per_minute
    async with httpx.AsyncClient(base_url=_base(settings)) as http:
        # A spray of distinct usernames from one address: each name stays under its own limit. The spoofed
        # X-Forwarded-For must not make each attempt look like a new client (no proxy is trusted by default).
        statuses = [(await http.post("/api/auth/token", data={"username": f"spray{i}", "password": "x"},
                                     headers={"X-Forwarded-For": f"10.9.{i // 250}.{i % 250}"})).status_code
                    for i in range(per_address)]
        assert set(statuses) == {401}
        res = await http.post("/api/auth/token", data={"username": "sec-late", "password": "sec-late-pw"},
                              headers={"X-Forwarded-For": "10.9.9.9"})
        assert res.status_code == 429
    async with httpx.AsyncClient(base_url=_base(settings), transport=_from("127.0.0.4")) as elsewhere:
        res = await elsewhere.post("/api/auth/token", data={"username": "sec-late", "password": "sec-late-pw"})
        assert res.status_code == 200


@pytest.mark.parametrize("settings", [{"api_trusted_proxies": "127.0.0.5, 10.0.0.0/8"}], indirect=True)
async def test_forwarded_address_is_believed_only_from_a_named_proxy(running_hub: Any, world: Any,
                                                                     settings: Settings) -> None:
    await world.user("sec-proxied", "operator")
    free = ThrottlePolicy().free_failures
    wrong = {"username": "sec-proxied", "password": "wrong"}
    good = {"username": "sec-proxied", "password": "sec-proxied-pw"}
    async with httpx.AsyncClient(base_url=_base(settings), transport=_from("127.0.0.5")) as proxy:
        for _ in range(free):
            await proxy.post("/api/auth/token", data=wrong, headers={"X-Forwarded-For": "198.51.100.7"})
        held = await proxy.post("/api/auth/token", data=good, headers={"X-Forwarded-For": "198.51.100.7"})
        assert held.status_code == 429
        # Through the proxy, another client is another address.
        other = await proxy.post("/api/auth/token", data=good, headers={"X-Forwarded-For": "198.51.100.8"})
        assert other.status_code == 200
    async with httpx.AsyncClient(base_url=_base(settings), transport=_from("127.0.0.6")) as stranger:
        # Not a named proxy: its header is ignored, so its failures count against its own address.
        for i in range(free):
            await stranger.post("/api/auth/token", data=wrong, headers={"X-Forwarded-For": f"198.51.100.{20 + i}"})
        res = await stranger.post("/api/auth/token", data=good, headers={"X-Forwarded-For": "198.51.100.99"})
        assert res.status_code == 429


def test_trusted_proxies_must_be_addresses() -> None:
    for bad in ("*", "proxy.example.org", "10.0.0.0/33"):
        with pytest.raises(ConfigError, match="ELDERCARE_API_TRUSTED_PROXIES"):
            load_settings(api_trusted_proxies=bad)
    assert load_settings(api_trusted_proxies="10.0.0.5, ::1, 10.1.0.0/16").trusted_proxy_list == [
        "10.0.0.5", "::1", "10.1.0.0/16"]


async def _seed_demo(settings: Settings) -> list[str]:
    """The accounts a demo run leaves behind in the database, seeded by the demo itself."""
    from devices.credentials import CredentialStore
    from simulators import demo

    async with await psycopg.AsyncConnection.connect(settings.db_url) as conn:
        await demo.seed(conn, CredentialStore(settings.data_dir / "passwd"), 2, random.Random(1))
        return [r[0] for r in await (await conn.execute("SELECT username FROM users ORDER BY username")).fetchall()]


async def test_demo_accounts_log_in_only_in_demo_mode(running_hub: Any, settings: Settings) -> None:
    names = await _seed_demo(settings)
    assert names == ["demo", "worker1", "worker2"]  # README and docs/console.md list exactly these
    async with httpx.AsyncClient(base_url=_base(settings), transport=_from("127.0.0.7")) as http:
        for name in names:
            res = await http.post("/api/auth/token", data={"username": name, "password": name})
            assert res.status_code == 401, name


@pytest.mark.parametrize("settings", [{"demo": True}], indirect=True)
async def test_demo_accounts_work_in_demo_mode(running_hub: Any, settings: Settings) -> None:
    names = await _seed_demo(settings)
    async with httpx.AsyncClient(base_url=_base(settings)) as http:
        for name in names:
            res = await http.post("/api/auth/token", data={"username": name, "password": name})
            assert res.status_code == 200, res.text

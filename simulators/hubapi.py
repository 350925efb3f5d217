"""A small client for the hub API: log in, provision households and devices, read alerts and timelines."""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

import httpx

from hub.errors import EldercareError


class HubApiError(EldercareError):
    """The hub answered with an error, or a request could not be made."""


class HubUnreachable(HubApiError):
    """Nothing answers at the hub's URL."""


class HubApi:
    """`async with HubApi(url, user, password) as api: await api.alerts("R1")`.

    url: base URL of the hub (http://127.0.0.1:8080).
    user, password: an operator or admin account; the client logs in on entry.
    timeout: seconds for each request.
    """

    def __init__(self, url: str, user: str, password: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._user = user
        self._password = password
        self._http = httpx.AsyncClient(base_url=self.url, timeout=timeout)

    async def __aenter__(self) -> HubApi:
        await self.login()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self._http.aclose()

    async def login(self) -> None:
        """Get a bearer token for the account given at construction."""
        res = await self._request("POST", "/api/auth/token",
                                  data={"username": self._user, "password": self._password})
        self._http.headers["Authorization"] = f"Bearer {res.json()['access_token']}"

    async def _request(self, method: str, path: str, ok: tuple[int, ...] = (200, 201, 204),
                       **kwargs: Any) -> httpx.Response:
        try:
            res = await self._http.request(method, path, **kwargs)
        except httpx.ConnectError as err:
            raise HubUnreachable(f"no hub answers at {self.url} ({type(err).__name__}); is it running?") from err
        except httpx.HTTPError as err:
            raise HubApiError(f"{method} {path} failed: {type(err).__name__}") from err
        if res.status_code not in ok:
            raise HubApiError(f"{method} {path} → HTTP {res.status_code}: {res.text[:200]}")
        return res

    async def _settled(self, path: str, body: dict[str, Any]) -> httpx.Response:
        """POST, retrying briefly on 404: the hub may answer a create before its transaction is visible."""
        for _ in range(20):
            res = await self._request("POST", path, ok=(200, 201, 404), json=body)
            if res.status_code != 404:
                return res
            await asyncio.sleep(0.1)
        raise HubApiError(f"POST {path} → HTTP 404: {res.text[:200]}")

    async def has_provisioning(self) -> bool:
        """True when the hub offers the provisioning endpoints (POST /api/devices)."""
        res = await self._request("GET", "/openapi.json", ok=(200, 404))
        if res.status_code != 200:
            return False
        return "post" in res.json().get("paths", {}).get("/api/devices", {})

    async def create_region(self, path: str, level: str, name: str) -> None:
        """Create a region; an existing one, or one we may not create (outside our scope), is left to the hub."""
        await self._request("POST", "/api/regions", ok=(200, 201, 403, 409),
                            json={"path": path, "level": level, "name": name})

    async def create_household(self, body: dict[str, Any]) -> None:
        """POST /api/households {id, region_path, address, lat, lon}."""
        await self._request("POST", "/api/households", json=body)

    async def create_resident(self, body: dict[str, Any]) -> None:
        """POST /api/residents {id, household_id, name, birth_year, risk_flags, contacts...}."""
        await self._settled("/api/residents", body)

    async def set_safe_zones(self, resident_id: str, zones: list[dict[str, Any]]) -> None:
        """Replace a resident's safe zones."""
        await self._request("PUT", f"/api/residents/{resident_id}/safe-zones", json={"zones": zones})

    async def create_device(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /api/devices; the answer carries the device's MQTT username and password."""
        res = await self._settled("/api/devices", body)
        out: dict[str, Any] = res.json()
        return out

    async def delete_device(self, device_id: str) -> None:
        """Revoke a device (an absent one is fine)."""
        await self._request("DELETE", f"/api/devices/{device_id}", ok=(200, 204, 404))

    async def alerts(self, resident_id: str) -> list[dict[str, Any]]:
        """Every alert of a resident, newest first."""
        res = await self._request("GET", "/api/alerts",
                                  params={"resident_id": resident_id, "state": "all", "limit": 200})
        items: list[dict[str, Any]] = res.json()["items"]
        return items

    async def timeline(self, alert_id: int) -> list[dict[str, Any]]:
        """An alert's timeline entries in order."""
        res = await self._request("GET", f"/api/alerts/{alert_id}/timeline")
        entries: list[dict[str, Any]] = res.json()
        return entries

    async def acknowledge(self, alert_id: int, note: str = "simulator") -> None:
        """Acknowledge an alert as the logged-in user."""
        await self._request("POST", f"/api/alerts/{alert_id}/ack", json={"via": "simulator", "note": note})

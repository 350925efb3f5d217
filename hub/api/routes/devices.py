"""Devices: provisioning (the broker password is shown once), binding, status, fleet health, revocation."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, status
from psycopg import AsyncConnection
from pydantic import BaseModel, Field, field_validator

from devices.credentials import CredentialError, CredentialStore
from devices.provisioning import ProvisioningError, check_device_id, issue_credentials, provision, revoke
from devices.registry import device_types
from hub.api.deps import ConnDep, CurrentUser, HubDep, require_roles
from hub.api.routes.audit import record
from hub.api.routes.residents import ID, load_household, load_resident
from hub.api.schemas import Body, Limit, Offset, Page, bad_request, conflict, fetch_all, fetch_one, not_found, page
from hub.users import User, scope_filter

router = APIRouter(tags=["devices"])
MANAGERS = require_roles("admin", "operator")

# A device is "offline" when it said so, or has not been heard from for this long.
OFFLINE_AFTER = "30 minutes"
LOW_BATTERY = 20.0
WEARABLES = ("wristband", "watch3g")
# `meta` is returned with every device in every list: model, firmware, a z2m name, not documents.
META_MAX_BYTES = 4096


class DeviceIn(Body):
    """A device to provision, bound to a resident or a household in your scope."""

    id: str = Field(pattern=ID, description="also the device's MQTT username")
    type: str = Field(max_length=40, description="a registered device type, e.g. wristband, door, smoke")
    resident_id: str | None = Field(None, pattern=ID)
    household_id: str | None = Field(None, pattern=ID)
    room: str | None = Field(None, max_length=40)
    meta: dict[str, Any] | None = Field(
        None, description=f"free-form, e.g. model and firmware; at most {META_MAX_BYTES} bytes as JSON")

    @field_validator("meta")
    @classmethod
    def _meta_size(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
            if size > META_MAX_BYTES:
                raise ValueError(f"meta is {size} bytes as JSON; at most {META_MAX_BYTES}")
        return value


class BindingIn(Body):
    """A new binding: resident and/or household, and room."""

    resident_id: str | None = Field(None, pattern=ID)
    household_id: str | None = Field(None, pattern=ID)
    room: str | None = Field(None, max_length=40)


class Provisioned(BaseModel):
    """A provisioned device; `mqtt_password` is shown only in this response."""

    id: str
    type: str
    resident_id: str | None
    household_id: str | None
    room: str | None
    mqtt_username: str
    mqtt_password: str


class Device(BaseModel):
    """A device, its binding and its last known health."""

    id: str
    type: str
    resident_id: str | None
    household_id: str | None
    region_path: str | None
    room: str | None
    status: str
    provisioned_at: datetime
    revoked_at: datetime | None
    meta: dict[str, Any]
    last_seen: datetime | None
    online: bool | None
    battery: float | None
    signal: float | None
    worn: bool | None
    tamper: bool | None
    last_location: dict[str, Any] | None
    problems: list[str]


class FleetHealth(BaseModel):
    """Counts over the active devices in your scope."""

    total: int
    offline: int
    low_battery: int
    not_worn: int
    revoked: int


_FROM = """FROM devices d LEFT JOIN residents r ON r.id = d.resident_id
LEFT JOIN households h ON h.id = COALESCE(d.household_id, r.household_id)
LEFT JOIN device_status s ON s.device_id = d.id"""
_OFFLINE = f"(s.online IS FALSE OR s.last_seen IS NULL OR s.last_seen < now() - interval '{OFFLINE_AFTER}')"
_LOW = f"(s.battery IS NOT NULL AND s.battery < {LOW_BATTERY})"
_NOT_WORN = "(d.type IN ('wristband', 'watch3g') AND s.worn IS FALSE)"
_COLS = f"""d.id, d.type, d.resident_id, COALESCE(d.household_id, r.household_id) AS household_id, h.region_path,
  d.room, d.status, d.provisioned_at, d.revoked_at, d.meta, s.last_seen, s.online, s.battery, s.signal, s.worn,
  s.tamper, s.last_location, array_remove(ARRAY[
    CASE WHEN d.status = 'active' AND {_OFFLINE} THEN 'offline' END,
    CASE WHEN {_LOW} THEN 'low_battery' END,
    CASE WHEN {_NOT_WORN} THEN 'not_worn' END,
    CASE WHEN s.tamper THEN 'tamper' END], NULL) AS problems"""


def _scope(user: User) -> tuple[str, dict[str, Any]]:
    return scope_filter(user, "h.region_path", "d.resident_id")


async def _load(conn: AsyncConnection[Any], user: User, device_id: str) -> dict[str, Any]:
    where, params = _scope(user)
    row = await fetch_one(conn, f"SELECT {_COLS} {_FROM} WHERE d.id = %(did)s AND {where}",
                          {"did": device_id, **params})
    if row is None:
        raise not_found("device", device_id)
    return row


def credential_store(hub: Any) -> CredentialStore:
    """The broker's password file as the hub's settings name it."""
    settings = hub.settings
    pid = settings.mqtt_reload_pid_file
    if pid is None and settings.embedded:
        pid = settings.data_dir / "mosquitto" / "mosquitto.pid"
    return CredentialStore(settings.passwd_file, pid)


async def _check_binding(conn: AsyncConnection[Any], user: User, resident_id: str | None,
                         household_id: str | None) -> None:
    if resident_id is None and household_id is None:
        raise bad_request("bind the device to a resident_id or a household_id")
    if resident_id is not None:
        row = await load_resident(conn, user, resident_id)
        if household_id is not None and household_id != row["household_id"]:
            raise bad_request(f"resident {resident_id} does not live in household {household_id}")
    if household_id is not None:
        await load_household(conn, user, household_id)


@router.get("/api/devices", response_model=Page[Device], summary="Devices in your scope with their health")
async def list_devices(
    conn: ConnDep,
    user: CurrentUser,
    limit: Limit = 50,
    offset: Offset = 0,
    problem: Annotated[Literal["offline", "low_battery", "not_worn", "any"] | None,
                       Query(description="only devices with this problem")] = None,
    type: Annotated[str | None, Query(max_length=40)] = None,
    resident_id: Annotated[str | None, Query(max_length=64)] = None,
    include_revoked: bool = False,
) -> Page[Device]:
    """Active devices by default; ordered by id."""
    where, params = _scope(user)
    clauses = [where]
    if not include_revoked:
        clauses.append("d.status = 'active'")
    conditions = {"offline": _OFFLINE, "low_battery": _LOW, "not_worn": _NOT_WORN,
                  "any": f"({_OFFLINE} OR {_LOW} OR {_NOT_WORN})"}
    if problem is not None:
        clauses.append(conditions[problem])
    if type is not None:
        clauses.append("d.type = %(type)s")
        params["type"] = type
    if resident_id is not None:
        clauses.append("d.resident_id = %(rid)s")
        params["rid"] = resident_id
    rows = await fetch_all(conn, f"SELECT {_COLS} {_FROM} WHERE {' AND '.join(clauses)}"
                           " ORDER BY d.id LIMIT %(limit)s OFFSET %(offset)s",
                           {**params, "limit": limit + 1, "offset": offset})
    items, nxt = page(rows, limit, offset)
    return Page[Device](items=[Device(**r) for r in items], next_offset=nxt)


@router.get("/api/fleet/health", response_model=FleetHealth, summary="Fleet health counts in your scope",
            dependencies=[require_roles("admin", "operator", "community_worker")])
async def fleet_health(conn: ConnDep, user: CurrentUser) -> FleetHealth:
    """Offline, low battery, wristbands not worn, revoked."""
    where, params = _scope(user)
    row = await fetch_one(
        conn, "SELECT count(*) FILTER (WHERE d.status = 'active') AS total,"
        f" count(*) FILTER (WHERE d.status = 'active' AND {_OFFLINE}) AS offline,"
        f" count(*) FILTER (WHERE d.status = 'active' AND {_LOW}) AS low_battery,"
        f" count(*) FILTER (WHERE d.status = 'active' AND {_NOT_WORN}) AS not_worn,"
        f" count(*) FILTER (WHERE d.status = 'revoked') AS revoked {_FROM} WHERE {where}", params)
    assert row is not None
    return FleetHealth(**row)


@router.get("/api/devices/{device_id}", response_model=Device, summary="A device's binding and status")
async def get_device(device_id: str, conn: ConnDep, user: CurrentUser) -> Device:
    """404 when absent or outside your scope."""
    return Device(**await _load(conn, user, device_id))


@router.post("/api/devices", response_model=Provisioned, status_code=201, dependencies=[MANAGERS],
             summary="Provision a device and create its broker account",
             responses={409: {"description": "an active device with this id exists"}})
async def create_device(body: DeviceIn, conn: ConnDep, user: CurrentUser, hub: HubDep) -> Provisioned:
    """Not idempotent: an active id gets 409 (revoke it or rotate its password); a revoked id is re-provisioned."""
    if body.type not in device_types():
        raise bad_request(f"unknown device type {body.type!r} (known: {', '.join(sorted(device_types().keys()))})")
    try:  # before any row or account exists: the hub's and the gateways' accounts are not device ids
        check_device_id(credential_store(hub), body.id)
    except ProvisioningError as err:
        raise bad_request(str(err)) from None
    await _check_binding(conn, user, body.resident_id, body.household_id)
    existing = await fetch_one(conn, "SELECT status FROM devices WHERE id = %s FOR UPDATE", (body.id,))
    if existing is not None and existing["status"] == "active":
        raise conflict(f"device {body.id} is already provisioned; revoke it or rotate its credentials")
    try:
        binding = await provision(conn, body.id, body.type, resident_id=body.resident_id,
                                  household_id=body.household_id, room=body.room, meta=body.meta)
    except ProvisioningError as err:
        raise bad_request(str(err)) from None
    await record(conn, user, "device.provision", f"device:{body.id}", {"type": body.type})
    # The row commits before the broker account exists, so a failed commit leaves no orphan account.
    await conn.commit()
    password = await _issue(hub, body.id)
    hub.bindings.put(binding)
    return Provisioned(id=body.id, type=body.type, resident_id=binding.resident_id,
                       household_id=binding.household_id, room=body.room, mqtt_username=body.id,
                       mqtt_password=password)


async def _issue(hub: Any, device_id: str) -> str:
    try:
        return (await asyncio.to_thread(issue_credentials, credential_store(hub), [device_id]))[device_id]
    except ProvisioningError as err:
        raise bad_request(str(err)) from None
    except CredentialError as err:
        raise conflict(f"device saved but the broker could not reload its accounts: {err}") from None


@router.post("/api/devices/{device_id}/credentials", response_model=Provisioned, dependencies=[MANAGERS],
             summary="Rotate a device's broker password (shown once)")
async def rotate_credentials(device_id: str, conn: ConnDep, user: CurrentUser, hub: HubDep) -> Provisioned:
    """The old password stops working when the broker reloads."""
    row = await _load(conn, user, device_id)
    if row["status"] != "active":
        raise conflict(f"device {device_id} is revoked; provision it again")
    await record(conn, user, "device.credentials", f"device:{device_id}")
    await conn.commit()
    password = await _issue(hub, device_id)
    return Provisioned(id=device_id, type=row["type"], resident_id=row["resident_id"],
                       household_id=row["household_id"], room=row["room"], mqtt_username=device_id,
                       mqtt_password=password)


@router.patch("/api/devices/{device_id}", response_model=Device, dependencies=[MANAGERS],
              summary="Rebind a device to another resident, household or room")
async def rebind(device_id: str, body: BindingIn, conn: ConnDep, user: CurrentUser, hub: HubDep) -> Device:
    """Both the old and the new binding must be in your scope."""
    row = await _load(conn, user, device_id)
    if row["status"] != "active":
        raise conflict(f"device {device_id} is revoked; provision it again")
    await _check_binding(conn, user, body.resident_id, body.household_id)
    binding = await provision(conn, device_id, row["type"], resident_id=body.resident_id,
                              household_id=body.household_id, room=body.room, meta=row["meta"])
    await record(conn, user, "device.bind", f"device:{device_id}",
                 {"resident_id": body.resident_id, "household_id": body.household_id})
    await conn.commit()
    hub.bindings.put(binding)
    return Device(**await _load(conn, user, device_id))


@router.delete("/api/devices/{device_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[MANAGERS],
               summary="Revoke a device: its broker account is deleted, its messages are refused")
async def revoke_device(device_id: str, conn: ConnDep, user: CurrentUser, hub: HubDep) -> None:
    """Idempotent: revoking a revoked device is a no-op 204."""
    row = await _load(conn, user, device_id)
    if row["status"] == "revoked":
        return
    await record(conn, user, "device.revoke", f"device:{device_id}")
    try:
        binding = await revoke(conn, credential_store(hub), device_id)
    except (ProvisioningError, CredentialError) as err:
        raise conflict(str(err)) from None
    await conn.commit()
    hub.bindings.put(binding)

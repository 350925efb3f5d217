"""Provisioning: register a device, bind it to a resident, and give it its own broker account."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection

from alerts.model import Binding
from devices.credentials import CredentialStore, ReservedAccount, new_secret
from devices.registry import device_types
from devices.topics import DEVICE_ID
from hub.errors import EldercareError


class ProvisioningError(EldercareError):
    """A device could not be provisioned or revoked."""


@dataclass(frozen=True)
class Provisioned:
    """A provisioned device and its broker password (shown once, stored only as a hash)."""

    device_id: str
    device_type: str
    password: str


# Who a device belongs to; the ingestion cache and provisioning read bindings with this one query.
BINDING_SQL = """
SELECT d.id, d.type, d.resident_id, COALESCE(d.household_id, r.household_id), h.region_path, d.room,
       d.status = 'active', d.meta->>'z2m_name'
FROM devices d
LEFT JOIN residents r ON r.id = d.resident_id
LEFT JOIN households h ON h.id = COALESCE(d.household_id, r.household_id)
"""
_BINDING = BINDING_SQL + " WHERE d.id = %s"


def check_device_id(store: CredentialStore, device_id: str) -> None:
    """Refuse an id that is not a device id or that names a service account (the hub, a gateway)."""
    if not DEVICE_ID.match(device_id):
        raise ProvisioningError("device id must be 1-64 of A-Z a-z 0-9 _ -")
    if store.is_reserved(device_id):
        raise ProvisioningError(f"device id {device_id!r} is reserved for a service account")


async def provision(conn: AsyncConnection[Any], device_id: str, device_type: str, *,
                    resident_id: str | None = None, household_id: str | None = None,
                    room: str | None = None, meta: dict[str, Any] | None = None) -> Binding:
    """Insert or rebind a device row (credentials are set separately, after commit)."""
    if not DEVICE_ID.match(device_id):
        raise ProvisioningError("device id must be 1-64 of A-Z a-z 0-9 _ -")
    if device_type not in device_types():
        raise ProvisioningError(f"unknown device type {device_type!r} (known: {', '.join(device_types().keys())})")
    if resident_id is None and household_id is None:
        raise ProvisioningError("a device must be bound to a resident or a household")
    from psycopg.types.json import Jsonb

    await conn.execute(
        "INSERT INTO devices (id, type, resident_id, household_id, room, meta) VALUES (%s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (id) DO UPDATE SET type = EXCLUDED.type, resident_id = EXCLUDED.resident_id,"
        " household_id = EXCLUDED.household_id, room = EXCLUDED.room, meta = EXCLUDED.meta,"
        " status = 'active', revoked_at = NULL",
        (device_id, device_type, resident_id, household_id, room, Jsonb(meta or {})),
    )
    row = await (await conn.execute(_BINDING, (device_id,))).fetchone()
    if row is None or row[4] is None:
        raise ProvisioningError("the resident or household the device is bound to does not exist")
    return Binding(*row)


def issue_credentials(store: CredentialStore, device_ids: list[str]) -> dict[str, str]:
    """Create device broker accounts in one file write; returns their passwords (never a service's)."""
    secrets_by_id = {device_id: new_secret() for device_id in device_ids}
    try:
        store.set_devices(secrets_by_id)
    except ReservedAccount as err:
        raise ProvisioningError(str(err)) from err
    return secrets_by_id


async def revoke(conn: AsyncConnection[Any], store: CredentialStore, device_id: str) -> Binding:
    """Mark a device revoked and delete its broker account (never a service account)."""
    if store.is_reserved(device_id):
        raise ProvisioningError(f"device id {device_id!r} is reserved for a service account")
    cur = await conn.execute("UPDATE devices SET status = 'revoked', revoked_at = now() WHERE id = %s", (device_id,))
    if cur.rowcount == 0:
        raise ProvisioningError(f"no device {device_id!r}")
    store.remove_device(device_id)
    row = await (await conn.execute(_BINDING, (device_id,))).fetchone()
    assert row is not None
    return Binding(*row)

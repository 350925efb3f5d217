"""`python -m devices provision|revoke`: register a device and issue its broker account, or withdraw it."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import psycopg

from devices.credentials import CredentialStore
from devices.provisioning import check_device_id, issue_credentials, provision, revoke
from hub.errors import ConfigError, EldercareError
from hub.settings import Settings, load_settings


async def _provision(settings: Settings, args: argparse.Namespace) -> dict[str, object]:
    assert settings.db_url is not None
    meta: dict[str, object] = {"z2m_name": args.z2m_name} if args.z2m_name else {}
    store = CredentialStore(settings.passwd_file, settings.mqtt_reload_pid_file)
    check_device_id(store, args.device_id)  # before the row exists: a service account's name is refused
    async with await psycopg.AsyncConnection.connect(settings.db_url) as conn:
        binding = await provision(conn, args.device_id, args.type, resident_id=args.resident,
                                  household_id=args.household, room=args.room, meta=meta)
    password = issue_credentials(store, [binding.device_id])[binding.device_id]
    return {"device_id": binding.device_id, "type": binding.device_type, "resident_id": binding.resident_id,
            "household_id": binding.household_id, "mqtt_username": binding.device_id, "mqtt_password": password}


async def _revoke(settings: Settings, args: argparse.Namespace) -> dict[str, object]:
    assert settings.db_url is not None
    store = CredentialStore(settings.passwd_file, settings.mqtt_reload_pid_file)
    async with await psycopg.AsyncConnection.connect(settings.db_url) as conn:
        binding = await revoke(conn, store, args.device_id)
    return {"device_id": binding.device_id, "revoked": True}


def main(argv: list[str] | None = None) -> int:
    """Entry point; the password is printed once and stored only as a hash."""
    parser = argparse.ArgumentParser(prog="python -m devices", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("provision", help="register a device and create its broker account")
    add.add_argument("device_id")
    add.add_argument("type", help="device type key, e.g. wristband, door, motion")
    add.add_argument("--resident", help="resident the device belongs to")
    add.add_argument("--household", help="household (for home sensors without a resident)")
    add.add_argument("--room", help="room or placement, e.g. entrance, bathroom")
    add.add_argument("--z2m-name", help="zigbee2mqtt friendly name, when the device comes through zigbee2mqtt")
    rm = sub.add_parser("revoke", help="mark a device revoked and delete its broker account")
    rm.add_argument("device_id")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        if settings.db_url is None:
            raise ConfigError("ELDERCARE_DB_URL is not set (with `make run`, see var/pg/password and the README)")
        job = _provision if args.command == "provision" else _revoke
        print(json.dumps(asyncio.run(job(settings, args)), ensure_ascii=False))
        return 0
    except (EldercareError, psycopg.Error) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

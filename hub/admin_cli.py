"""`python -m hub users create-admin NAME`: an admin account from the command line, e.g. the first one.

The password comes from a prompt (typed twice) or, when stdin is not a terminal, from its first line; never
from the command line, where other users of the machine could read it in the process list.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import re
import socket
import sys
from contextlib import ExitStack
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from hub.errors import EldercareError
from hub.settings import Settings
from hub.users import hash_password

USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{2,60}$")
MIN_PASSWORD, MAX_PASSWORD = 8, 200


class AccountError(EldercareError):
    """The account cannot be created as asked."""


def add_parser(sub: Any) -> None:
    """The `users` command and its sub-commands."""
    users = sub.add_parser("users", help="manage accounts (create-admin: the first admin)")
    commands = users.add_subparsers(dest="users_command", required=True)
    create = commands.add_parser(
        "create-admin", help="create an admin; the password is prompted for, or read from the first line of stdin")
    create.add_argument("username", help="2-60 letters, digits or _ . @ -")
    create.add_argument("--scope", default=None, help="region path the admin is limited to (default: the platform)")
    create.add_argument("--display-name", default="", help="the name the console shows")
    create.add_argument("--update", action="store_true",
                        help="the account exists: give it this password, make it an enabled admin, end its sessions")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run a `users` sub-command; errors are AccountError or ConfigError."""
    if not USERNAME.match(args.username):
        raise AccountError(f"username {args.username!r} must be 2-60 letters, digits or _ . @ -")
    password = read_password()
    with ExitStack() as services:
        db_url = _database(settings, services)
        from hub.storage.migrations import migrate

        migrate(db_url)  # the first admin may come before the hub's first start
        user_id, created = asyncio.run(create_admin(db_url, args.username, password, args.scope,
                                                    args.display_name, args.update))
    sys.stdout.write(f"admin {args.username} {'created' if created else 'updated'} (id {user_id})\n")
    return 0


def read_password() -> str:
    """The new password, from a prompt typed twice or from the first line of a pipe."""
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Password again: ") != password:
            raise AccountError("the two passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise AccountError(f"the password must have {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return password


def _database(settings: Settings, services: ExitStack) -> str:
    """ELDERCARE_DB_URL, or the private PostgreSQL under the data folder (started for the moment if it is down)."""
    if settings.db_url is not None:
        return settings.db_url
    from hub.embedded import PostgresInstance

    pg = PostgresInstance(settings.data_dir.resolve() / "pg", settings.embedded_pg_port)
    if not _listening(settings.embedded_pg_port):
        pg.start()
        services.callback(pg.stop)
    return pg.url


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


async def create_admin(db_url: str, username: str, password: str, scope: str | None, display_name: str,
                       update: bool) -> tuple[int, bool]:
    """Insert the admin (or, with `update`, reset an existing account to one); (id, created). Audited."""
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        if scope is not None and await (await conn.execute("SELECT 1 FROM regions WHERE path = %s",
                                                           (scope,))).fetchone() is None:
            raise AccountError(f"no region {scope}")
        row = await (await conn.execute(
            "INSERT INTO users (username, password_hash, role, scope_path, display_name)"
            " VALUES (%s, %s, 'admin', %s, %s) ON CONFLICT (username) DO NOTHING RETURNING id",
            (username, hash_password(password), scope, display_name))).fetchone()
        created = row is not None
        if row is None:
            if not update:
                raise AccountError(f"user {username} exists; add --update to make it an admin with this password")
            row = await (await conn.execute(
                "UPDATE users SET password_hash = %s, role = 'admin', scope_path = %s, resident_id = NULL,"
                " disabled = false WHERE username = %s RETURNING id",
                (hash_password(password), scope, username))).fetchone()
            assert row is not None
            await conn.execute("DELETE FROM auth_tokens WHERE user_id = %s", (row[0],))
        await conn.execute("INSERT INTO audit_log (user_id, action, target, details) VALUES (NULL, %s, %s, %s)",
                           ("user.create" if created else "user.update", f"user:{row[0]}",
                            Jsonb({"role": "admin", "via": "cli"})))
        return int(row[0]), created

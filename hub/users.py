"""Users, roles, scopes and login tokens (argon2 hashes, opaque expiring tokens)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from psycopg import AsyncConnection

from hub.errors import EldercareError

ROLES = ("admin", "operator", "community_worker", "family")
DEMO_ACCOUNTS = {"demo": "demo", "worker1": "worker1", "worker2": "worker2"}
"""Accounts `python -m hub run --demo` seeds (simulators/demo.py), with their well-known passwords."""
_hasher = PasswordHasher()
# Verifying against this keeps a login for an unknown user as slow as one for a known user.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class AuthError(EldercareError):
    """Login refused or token invalid; the message never says which part was wrong."""


@dataclass(frozen=True)
class User:
    """An authenticated user and the part of the region tree they may see."""

    id: int
    username: str
    role: str
    scope_path: str | None
    resident_id: str | None
    display_name: str = ""

    @property
    def is_platform_wide(self) -> bool:
        """Admins and operators without a scope see the whole platform."""
        return self.role in {"admin", "operator"} and self.scope_path is None


def hash_password(password: str) -> str:
    """An argon2id hash."""
    return _hasher.hash(password)


def _token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def create_user(conn: AsyncConnection[Any], username: str, password: str, role: str,
                      scope_path: str | None = None, resident_id: str | None = None,
                      display_name: str = "", phone: str | None = None, email: str | None = None) -> int:
    """Insert a user (or update the password and role of an existing one); returns the id."""
    if role not in ROLES:
        raise AuthError(f"unknown role {role!r}")
    if role == "family" and resident_id is None:
        raise AuthError("a family member must be bound to a resident")
    if role == "community_worker" and scope_path is None:
        raise AuthError("a community worker must be scoped to a community")
    cur = await conn.execute(
        "INSERT INTO users (username, password_hash, role, scope_path, resident_id, display_name, phone, email)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (username) DO UPDATE SET password_hash = EXCLUDED.password_hash, role = EXCLUDED.role,"
        " scope_path = EXCLUDED.scope_path, resident_id = EXCLUDED.resident_id RETURNING id",
        (username, hash_password(password), role, scope_path, resident_id, display_name, phone, email),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def login(conn: AsyncConnection[Any], username: str, password: str, ttl: timedelta) -> tuple[str, datetime]:
    """Check a password and issue a bearer token; (token, expiry)."""
    row = await (await conn.execute(
        "SELECT id, password_hash, disabled FROM users WHERE username = %s", (username,)
    )).fetchone()
    stored = row[1] if row else _DUMMY_HASH
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        raise AuthError("incorrect username or password") from None
    if row is None or row[2]:
        raise AuthError("incorrect username or password")
    token = secrets.token_urlsafe(32)
    expires = datetime.now(UTC) + ttl
    await conn.execute("INSERT INTO auth_tokens (token_hash, user_id, expires_at) VALUES (%s, %s, %s)",
                       (_token_hash(token), row[0], expires))
    return token, expires


async def user_for_token(conn: AsyncConnection[Any], token: str) -> User:
    """The user behind a live token."""
    row = await (await conn.execute(
        "SELECT u.id, u.username, u.role, u.scope_path, u.resident_id, u.display_name FROM auth_tokens t"
        " JOIN users u ON u.id = t.user_id WHERE t.token_hash = %s AND t.expires_at > now() AND NOT u.disabled",
        (_token_hash(token),),
    )).fetchone()
    if row is None:
        raise AuthError("token is invalid or expired")
    return User(*row)


async def logout(conn: AsyncConnection[Any], token: str) -> None:
    """Revoke a token."""
    await conn.execute("DELETE FROM auth_tokens WHERE token_hash = %s", (_token_hash(token),))


def region_within(region_path: str, scope_path: str) -> bool:
    """True when `region_path` is `scope_path` or below it: the rule of scope_filter for paths already in hand.

    A literal prefix compare, so a `_` or `%` in a region name is never a wildcard.
    """
    return region_path == scope_path or region_path.startswith(scope_path + "/")


def scope_filter(user: User, region_col: str, resident_col: str) -> tuple[str, dict[str, Any]]:
    """A WHERE fragment limiting rows to what the user may see, enforced in the query itself."""
    if user.is_platform_wide:
        return "TRUE", {}
    if user.role == "family":
        return f"{resident_col} = %(scope_resident)s", {"scope_resident": user.resident_id}
    if user.scope_path is None:
        return "FALSE", {}
    return (
        f"({region_col} = %(scope_path)s OR {region_col} LIKE %(scope_like)s)",
        {"scope_path": user.scope_path, "scope_like": below(user.scope_path)},
    )


def like_literal(text: str) -> str:
    """`text` escaped for LIKE: its `_`, `%` and `\\` match only themselves."""
    return text.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")


def below(path: str) -> str:
    """A LIKE pattern for the regions strictly below `path`."""
    # Unescaped, `sz/sec_t` would also match `sz/secxt/...`: `_` is LIKE's any-one-character wildcard.
    return like_literal(path) + "/%"


def account_scope(user: User, alias: str = "u") -> tuple[str, dict[str, Any]]:
    """A WHERE fragment for the accounts an admin or operator may see: scoped inside their region, or family there."""
    if user.is_platform_wide:
        return "TRUE", {}
    where, params = scope_filter(user, f"{alias}.scope_path", "NULL")
    family, family_params = scope_filter(user, "h.region_path", "NULL")
    return (f"({where} OR {alias}.resident_id IN (SELECT r.id FROM residents r"  # noqa: S608 - fragments
            f" JOIN households h ON h.id = r.household_id WHERE {family}))", {**params, **family_params})

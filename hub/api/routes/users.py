"""Users and roles: admins manage accounts; operators list the people in their scope (e.g. to assign work)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from psycopg import AsyncConnection
from pydantic import BaseModel, Field

from hub.api.deps import ConnDep, CurrentUser, require_roles
from hub.api.routes.audit import record
from hub.api.routes.regions import region_in_scope
from hub.api.schemas import Body, Limit, Offset, Page, bad_request, conflict, fetch_all, fetch_one, not_found, page
from hub.users import User, account_scope, hash_password, scope_filter

router = APIRouter(prefix="/api/users", tags=["users"])
ADMINS = require_roles("admin")
Role = Literal["admin", "operator", "community_worker", "family"]


class UserIn(Body):
    """A new account; community workers need a community scope, family members a resident."""

    username: str = Field(pattern=r"^[A-Za-z0-9_.@-]{2,60}$")
    password: str = Field(min_length=8, max_length=200)
    role: Role
    scope_path: str | None = Field(None, max_length=120, description="region the user is limited to")
    resident_id: str | None = Field(None, max_length=64, description="family members: their resident")
    display_name: str = Field("", max_length=100)
    phone: str | None = Field(None, pattern=r"^\+?[0-9 -]{3,20}$")
    email: str | None = Field(None, pattern=r"^[^@\s]+@[^@\s]+$", max_length=200)


class UserPatch(Body):
    """Fields an admin may change."""

    password: str | None = Field(None, min_length=8, max_length=200)
    role: Role | None = None
    scope_path: str | None = Field(None, max_length=120)
    resident_id: str | None = Field(None, max_length=64)
    display_name: str | None = Field(None, max_length=100)
    phone: str | None = Field(None, pattern=r"^\+?[0-9 -]{3,20}$")
    email: str | None = Field(None, pattern=r"^[^@\s]+@[^@\s]+$", max_length=200)
    disabled: bool | None = None


class UserOut(BaseModel):
    """An account (never its password hash)."""

    id: int
    username: str
    role: str
    scope_path: str | None
    resident_id: str | None
    display_name: str
    phone: str | None
    email: str | None
    disabled: bool
    created_at: datetime


_COLS = "u.id, u.username, u.role, u.scope_path, u.resident_id, u.display_name, u.phone, u.email, u.disabled," \
        " u.created_at"


def _check_role_shape(role: str, scope_path: str | None, resident_id: str | None) -> None:
    if role == "community_worker" and scope_path is None:
        raise bad_request("a community worker needs a scope_path (their community)")
    if role == "family" and resident_id is None:
        raise bad_request("a family member needs a resident_id")
    if role != "family" and resident_id is not None:
        raise bad_request("only family members are bound to a resident")
    if role == "family" and scope_path is not None:
        raise bad_request("a family member is limited by their resident_id, not by a scope_path")


async def _load(conn: AsyncConnection[Any], user: User, user_id: int) -> dict[str, Any]:
    where, params = account_scope(user)
    row = await fetch_one(conn, f"SELECT {_COLS} FROM users u WHERE u.id = %(id)s AND {where}",  # noqa: S608
                          {"id": user_id, **params})
    if row is None:
        raise not_found("user", user_id)
    return row


async def _check_refs(conn: AsyncConnection[Any], user: User, scope_path: str | None,
                      resident_id: str | None) -> None:
    """The region and resident an account is tied to exist and lie in the acting admin's own scope."""
    if not user.is_platform_wide and scope_path is None and resident_id is None:
        # An account with neither would see the whole platform: more than a scoped admin may hand out.
        raise bad_request("a scoped admin must give the account a scope_path inside their own scope")
    # Out of scope reads as absent, so the answer does not reveal which regions or residents exist elsewhere.
    if scope_path is not None and not await region_in_scope(conn, user, scope_path):
        raise bad_request(f"no region {scope_path}")
    if resident_id is not None:
        where, params = scope_filter(user, "h.region_path", "r.id")
        sql = ("SELECT 1 AS ok FROM residents r JOIN households h ON h.id = r.household_id"  # noqa: S608
               f" WHERE r.id = %(rid)s AND {where}")
        if await fetch_one(conn, sql, {"rid": resident_id, **params}) is None:
            raise bad_request(f"no resident {resident_id}")


@router.get("", response_model=Page[UserOut], dependencies=[require_roles("admin", "operator")],
            summary="Accounts in your scope")
async def list_users(conn: ConnDep, user: CurrentUser, limit: Limit = 50, offset: Offset = 0,
                     role: Annotated[Role | None, Query()] = None) -> Page[UserOut]:
    """Scoped operators see the accounts scoped inside their region."""
    where, params = account_scope(user)
    clauses = [where]
    if role is not None:
        clauses.append("u.role = %(role)s")
        params["role"] = role
    rows = await fetch_all(conn, f"SELECT {_COLS} FROM users u WHERE {' AND '.join(clauses)}"  # noqa: S608
                           " ORDER BY u.id LIMIT %(limit)s OFFSET %(offset)s",
                           {**params, "limit": limit + 1, "offset": offset})
    items, nxt = page(rows, limit, offset)
    return Page[UserOut](items=[UserOut(**r) for r in items], next_offset=nxt)


@router.get("/{user_id}", response_model=UserOut, dependencies=[require_roles("admin", "operator")],
            summary="One account")
async def get_user(user_id: int, conn: ConnDep, user: CurrentUser) -> UserOut:
    """404 when absent or outside your scope."""
    return UserOut(**await _load(conn, user, user_id))


@router.post("", response_model=UserOut, status_code=201, dependencies=[ADMINS], summary="Create an account")
async def create_user(body: UserIn, conn: ConnDep, user: CurrentUser) -> UserOut:
    """409 when the username is taken. Audited."""
    _check_role_shape(body.role, body.scope_path, body.resident_id)
    await _check_refs(conn, user, body.scope_path, body.resident_id)
    row = await fetch_one(
        conn, "INSERT INTO users (username, password_hash, role, scope_path, resident_id, display_name, phone, email)"
        " VALUES (%(username)s, %(hash)s, %(role)s, %(scope_path)s, %(resident_id)s, %(display_name)s, %(phone)s,"
        " %(email)s) ON CONFLICT (username) DO NOTHING RETURNING id",
        {**body.model_dump(exclude={"password"}), "hash": hash_password(body.password)})
    if row is None:
        raise conflict(f"username {body.username} is taken")
    await record(conn, user, "user.create", f"user:{row['id']}", {"role": body.role})
    return UserOut(**await _load(conn, user, row["id"]))


@router.patch("/{user_id}", response_model=UserOut, dependencies=[ADMINS], summary="Change an account")
async def patch_user(user_id: int, body: UserPatch, conn: ConnDep, user: CurrentUser) -> UserOut:
    """Disabling or changing the password also ends the account's sessions. Audited."""
    row = await _load(conn, user, user_id)
    changes = body.model_dump(include=body.model_fields_set)
    if changes.get("role", "") is None or changes.get("disabled", False) is None:
        raise bad_request("role and disabled cannot be null")
    merged = {**row, **changes}
    _check_role_shape(merged["role"], merged["scope_path"], merged["resident_id"])
    # The whole resulting account is checked, not only the changed fields: a role change alone can widen it.
    await _check_refs(conn, user, merged["scope_path"], merged["resident_id"])
    password = changes.pop("password", None)
    if password is not None:
        changes["password_hash"] = hash_password(password)
    if changes:
        sets = ", ".join(f"{k} = %({k})s" for k in changes)
        await conn.execute(f"UPDATE users SET {sets} WHERE id = %(uid)s",  # noqa: S608 - keys are field names
                           {**changes, "uid": user_id})
        if password is not None or changes.get("disabled") or "role" in changes or "scope_path" in changes:
            await conn.execute("DELETE FROM auth_tokens WHERE user_id = %s", (user_id,))
        await record(conn, user, "user.update", f"user:{user_id}",
                     {"fields": sorted(k if k != "password_hash" else "password" for k in changes)})
    return UserOut(**await _load(conn, user, user_id))

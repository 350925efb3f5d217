"""The audit log: who did what, when; recorded by every edit, acknowledgement and export."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from pydantic import BaseModel

from hub.api.deps import ConnDep, CurrentUser, require_roles
from hub.api.schemas import Limit, Offset, Page, fetch_all, page
from hub.users import User, account_scope

router = APIRouter(prefix="/api/audit", tags=["audit"])


class AuditEntry(BaseModel):
    """One audited action."""

    id: int
    ts: datetime
    user_id: int | None
    username: str | None
    action: str
    target: str
    details: dict[str, Any]


async def record(conn: AsyncConnection[Any], user: User, action: str, target: str,
                 details: dict[str, Any] | None = None) -> None:
    """Append to the audit log in the same transaction as the change (ids only, no personal data)."""
    await conn.execute("INSERT INTO audit_log (user_id, action, target, details) VALUES (%s, %s, %s, %s)",
                       (user.id, action, target, Jsonb(details or {})))


@router.get("", response_model=Page[AuditEntry], summary="The audit log in your scope, newest first (admins)",
            dependencies=[require_roles("admin")])
async def list_audit(
    conn: ConnDep,
    user: CurrentUser,
    limit: Limit = 50,
    offset: Offset = 0,
    action: Annotated[str | None, Query(max_length=60, description="e.g. alert.ack, export.alerts")] = None,
    user_id: Annotated[int | None, Query(ge=1)] = None,
) -> Page[AuditEntry]:
    """Filter by action or user. A scoped admin sees what the accounts in their scope did (their own included)."""
    where, scope_params = account_scope(user)
    # Actions by accounts outside the scope, and by no account at all, stay hidden from a scoped admin.
    clauses: list[str] = [where if user.is_platform_wide else f"(a.user_id = %(me)s OR {where})"]
    params: dict[str, Any] = {**scope_params, "me": user.id, "limit": limit + 1, "offset": offset}
    if action is not None:
        clauses.append("a.action = %(action)s")
        params["action"] = action
    if user_id is not None:
        clauses.append("a.user_id = %(user_id)s")
        params["user_id"] = user_id
    rows = await fetch_all(
        conn,
        "SELECT a.id, a.ts, a.user_id, u.username, a.action, a.target, a.details FROM audit_log a"  # noqa: S608
        f" LEFT JOIN users u ON u.id = a.user_id WHERE {' AND '.join(clauses)}"
        " ORDER BY a.id DESC LIMIT %(limit)s OFFSET %(offset)s", params)
    items, nxt = page(rows, limit, offset)
    return Page[AuditEntry](items=[AuditEntry(**r) for r in items], next_offset=nxt)

"""Dead letters: messages ingestion refused, with the reason, for operators to investigate."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from hub.api.deps import ConnDep, CurrentUser, require_roles
from hub.api.schemas import Limit, Offset, Page, fetch_all, page
from hub.users import scope_filter

router = APIRouter(prefix="/api/dead-letters", tags=["dead letters"])

_PREVIEW = 512  # bytes of payload shown, as text with invalid bytes replaced


class DeadLetter(BaseModel):
    """A refused message."""

    id: int
    received_at: datetime
    topic: str
    device_id: str | None
    reason: str
    detail: str
    payload_preview: str | None
    payload_bytes: int | None


@router.get("", response_model=Page[DeadLetter], dependencies=[require_roles("admin", "operator")],
            summary="Refused messages, newest first, with reasons")
async def list_dead_letters(
    conn: ConnDep, user: CurrentUser, limit: Limit = 50, offset: Offset = 0,
    reason: Annotated[str | None, Query(max_length=60)] = None,
    device_id: Annotated[str | None, Query(max_length=64)] = None,
) -> Page[DeadLetter]:
    """Platform-wide operators see all; scoped operators only those from known devices in their region."""
    clauses: list[str] = []
    params: dict[str, object] = {"limit": limit + 1, "offset": offset}
    if not user.is_platform_wide:
        where, scope_params = scope_filter(user, "h.region_path", "d.resident_id")
        clauses.append("EXISTS (SELECT 1 FROM devices d LEFT JOIN residents r ON r.id = d.resident_id"  # noqa: S608
                       " JOIN households h ON h.id = COALESCE(d.household_id, r.household_id)"
                       f" WHERE d.id = x.device_id AND {where})")
        params |= scope_params
    if reason is not None:
        clauses.append("x.reason = %(reason)s")
        params["reason"] = reason
    if device_id is not None:
        clauses.append("x.device_id = %(device_id)s")
        params["device_id"] = device_id
    rows = await fetch_all(
        conn, "SELECT x.id, x.received_at, x.topic, x.device_id, x.reason, x.detail,"  # noqa: S608
        f" substring(x.payload FROM 1 FOR {_PREVIEW}) AS preview, length(x.payload) AS payload_bytes"
        f" FROM dead_letters x WHERE {' AND '.join(clauses) or 'TRUE'}"
        " ORDER BY x.id DESC LIMIT %(limit)s OFFSET %(offset)s", params)
    items, nxt = page(rows, limit, offset)
    out = []
    for r in items:
        preview = r.pop("preview")
        out.append(DeadLetter(**r, payload_preview=None if preview is None
                              else bytes(preview).decode("utf-8", errors="replace")))
    return Page[DeadLetter](items=out, next_offset=nxt)

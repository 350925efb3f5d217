"""The live alert list: who each alert is about (name, age, community, address), filters, urgent ones first."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from psycopg import AsyncConnection
from pydantic import BaseModel

from hub.api.schemas import fetch_all
from hub.users import User, scope_filter


class Alert(BaseModel):
    """One alert as the API shows it."""

    id: int
    resident_id: str
    household_id: str
    region_path: str
    type: str
    severity: str
    active: bool
    acknowledged_at: datetime | None
    acknowledged_by: int | None
    closed_at: datetime | None
    resolution: str | None
    assigned_to: int | None
    first_ts: datetime
    last_ts: datetime
    trigger_count: int
    source_device: str | None
    location: dict[str, Any] | None
    details: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class ListedAlert(Alert):
    """An alert as the list shows it: the alert's fields plus the person and place it concerns."""

    resident_name: str
    age: int | None
    community: str
    community_name: str | None
    address: str
    pinned: bool


class ListedPage(BaseModel):
    """Unacknowledged open critical alerts first (on the first page only), then newest first.

    Pass `next_before` as `before` for the next page; pinned alerts are not repeated there.
    """

    items: list[ListedAlert]
    next_before: int | None


_PINNED = "(a.severity = 'critical' AND a.acknowledged_at IS NULL AND a.closed_at IS NULL)"
_SELECT = f"""SELECT a.id, a.resident_id, a.household_id, a.region_path, a.type, a.severity, a.active,
  a.acknowledged_at, a.acknowledged_by, a.closed_at, a.resolution, a.assigned_to, a.first_ts, a.last_ts,
  a.trigger_count, a.source_device, a.location, a.details, a.created_at, a.updated_at,
  r.name AS resident_name,
  CASE WHEN r.birth_year IS NOT NULL
    THEN extract(year FROM now() AT TIME ZONE 'Asia/Shanghai')::int - r.birth_year END AS age,
  a.region_path AS community, g.name AS community_name, h.address, {_PINNED} AS pinned
FROM alerts a JOIN residents r ON r.id = a.resident_id JOIN households h ON h.id = a.household_id
LEFT JOIN regions g ON g.path = a.region_path"""  # noqa: S608 - constant fragments


async def list_page(conn: AsyncConnection[Any], user: User, *, state: Literal["open", "closed", "all"],
                    type: str | None, severity: str | None, resident_id: str | None, community: str | None,
                    q: str | None, before: int | None, limit: int) -> ListedPage:
    """One page of alerts in the user's scope (the scope is part of the query)."""
    where, params = scope_filter(user, "a.region_path", "a.resident_id")
    clauses = [where]
    if state == "open":
        clauses.append("a.closed_at IS NULL")
    elif state == "closed":
        clauses.append("a.closed_at IS NOT NULL")
    for name, value in (("type", type), ("severity", severity), ("resident_id", resident_id)):
        if value is not None:
            clauses.append(f"a.{name} = %({name})s")
            params[name] = value
    if community:
        clauses.append("(a.region_path = %(community)s OR a.region_path LIKE %(community_like)s)")
        params |= {"community": community, "community_like": community.replace("%", r"\%") + "/%"}
    if q:
        # A name, or a phone number of the elder or of one of their contacts.
        clauses.append("(r.name ILIKE %(q)s OR r.phone LIKE %(q)s OR EXISTS (SELECT 1 FROM contacts c"
                       " WHERE c.resident_id = r.id AND c.phone LIKE %(q)s))")
        params["q"] = "%" + q.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_") + "%"
    base = " AND ".join(clauses)
    pinned: list[dict[str, Any]] = []
    if before is None:
        pinned = await fetch_all(conn, f"{_SELECT} WHERE {base} AND {_PINNED}"
                                 " ORDER BY a.id DESC LIMIT %(limit)s", {**params, "limit": limit})
    rest_limit = max(limit - len(pinned), 0)
    cursor = " AND a.id < %(before)s" if before is not None else ""
    rest = await fetch_all(conn, f"{_SELECT} WHERE {base} AND NOT {_PINNED}{cursor}"
                           " ORDER BY a.id DESC LIMIT %(limit)s",
                           {**params, "before": before, "limit": rest_limit + 1})
    more = len(rest) > rest_limit
    rest = rest[:rest_limit]
    # A page filled by pinned alerts alone continues with the newest unpinned alert.
    next_before = (rest[-1]["id"] if rest else 2**62) if more else None
    return ListedPage(items=[ListedAlert(**r) for r in pinned + rest], next_before=next_before)

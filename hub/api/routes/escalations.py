"""A responder's escalations: assign, accept → on the way → arrived → closed with an outcome, all on the timeline."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from psycopg import AsyncConnection
from pydantic import BaseModel, Field

from alerts.model import RESOLUTIONS
from alerts.store import add_event, feed
from hub.api.deps import ConnDep, CurrentUser, require_roles
from hub.api.routes.audit import record
from hub.api.schemas import Body, Limit, Offset, Page, bad_request, conflict, fetch_all, fetch_one, not_found, page
from hub.users import User, scope_filter

router = APIRouter(prefix="/api/escalations", tags=["escalations"])
RESPONDERS = require_roles("admin", "operator", "community_worker")
DISPATCHERS = require_roles("admin", "operator")
STEPS = ("accepted", "on_the_way", "arrived", "closed")


class Escalation(BaseModel):
    """An open (or just closed) alert from the responder's point of view."""

    alert_id: int
    resident_id: str
    resident_name: str
    address: str
    region_path: str
    type: str
    severity: str
    created_at: datetime
    acknowledged_at: datetime | None
    closed_at: datetime | None
    assigned_to: int | None
    responder_id: int | None
    state: str | None
    outcome: str | None
    location: dict[str, Any] | None
    home_lat: float | None
    home_lon: float | None


class NoteBody(Body):
    """An optional note for the timeline."""

    note: str = Field("", max_length=1000)


class ProgressBody(Body):
    """The next step of the response."""

    state: Literal["on_the_way", "arrived"]
    note: str = Field("", max_length=1000)


class CloseBody(Body):
    """How it ended."""

    resolution: Literal[RESOLUTIONS] = Field(description="the outcome")  # type: ignore[valid-type]
    note: str = Field("", max_length=2000)


class AssignBody(Body):
    """Who should respond."""

    user_id: int = Field(ge=1)
    note: str = Field("", max_length=1000)


_SELECT = """SELECT a.id AS alert_id, a.resident_id, r.name AS resident_name, h.address, a.region_path, a.type,
  a.severity, a.created_at, a.acknowledged_at, a.closed_at, a.assigned_to, p.user_id AS responder_id, p.state,
  p.outcome, a.location, h.lat AS home_lat, h.lon AS home_lon
FROM alerts a JOIN residents r ON r.id = a.resident_id JOIN households h ON h.id = a.household_id
LEFT JOIN alert_responses p ON p.alert_id = a.id"""


async def _load(conn: AsyncConnection[Any], user: User, alert_id: int) -> dict[str, Any]:
    where, params = scope_filter(user, "a.region_path", "a.resident_id")
    row = await fetch_one(conn, f"{_SELECT} WHERE a.id = %(id)s AND {where} FOR UPDATE OF a",
                          {"id": alert_id, **params})
    if row is None:
        raise not_found("alert", alert_id)
    return row


async def _changed(conn: AsyncConnection[Any], row: dict[str, Any], user: User, kind: str,
                   details: dict[str, Any]) -> None:
    await add_event(conn, row["alert_id"], kind, user.username, details)
    await record(conn, user, f"alert.{kind}", f"alert:{row['alert_id']}")
    await feed(conn, "alert", row["region_path"], row["resident_id"], {"alert_id": row["alert_id"], "change": kind})


@router.get("", response_model=Page[Escalation], dependencies=[RESPONDERS],
            summary="My escalations (assigned to or accepted by me), or every open one in my scope")
async def list_escalations(
    conn: ConnDep, user: CurrentUser, limit: Limit = 50, offset: Offset = 0,
    view: Annotated[Literal["mine", "open"], Query(description="mine, or all open alerts in scope")] = "mine",
) -> Page[Escalation]:
    """Open ones first, most severe first; closed ones of the last day stay visible in `mine`."""
    where, params = scope_filter(user, "a.region_path", "a.resident_id")
    clauses = [where]
    if view == "mine":
        clauses.append("(a.assigned_to = %(me)s OR p.user_id = %(me)s)")
        clauses.append("(a.closed_at IS NULL OR a.closed_at > now() - interval '1 day')")
        params["me"] = user.id
    else:
        clauses.append("a.closed_at IS NULL")
    rows = await fetch_all(
        conn, f"{_SELECT} WHERE {' AND '.join(clauses)} ORDER BY (a.closed_at IS NULL) DESC,"
        " array_position(ARRAY['critical','high','medium','low'], a.severity), a.id DESC"
        " LIMIT %(limit)s OFFSET %(offset)s", {**params, "limit": limit + 1, "offset": offset})
    items, nxt = page(rows, limit, offset)
    return Page[Escalation](items=[Escalation(**r) for r in items], next_offset=nxt)


@router.post("/{alert_id}/assign", response_model=Escalation, dependencies=[DISPATCHERS],
             summary="Assign an alert to a community worker or operator whose scope covers it")
async def assign(alert_id: int, body: AssignBody, conn: ConnDep, user: CurrentUser) -> Escalation:
    """Audited and on the timeline."""
    row = await _load(conn, user, alert_id)
    if row["closed_at"] is not None:
        raise conflict(f"alert {alert_id} is closed")
    target = await fetch_one(
        conn, "SELECT id, username FROM users WHERE id = %(id)s AND NOT disabled"
        " AND role IN ('community_worker', 'operator', 'admin')"
        " AND (scope_path IS NULL OR %(p)s = scope_path OR %(p)s LIKE scope_path || '/%%')",
        {"id": body.user_id, "p": row["region_path"]})
    if target is None:
        raise bad_request(f"user {body.user_id} cannot respond to alerts in {row['region_path']}")
    await conn.execute("UPDATE alerts SET assigned_to = %s, updated_at = now() WHERE id = %s",
                       (body.user_id, alert_id))
    await _changed(conn, row, user, "assigned", {"to": target["username"], "note": body.note})
    return Escalation(**await _load(conn, user, alert_id))


@router.post("/{alert_id}/accept", response_model=Escalation, dependencies=[RESPONDERS],
             summary="Take the alert: acknowledges it and stops the escalation ladder")
async def accept(alert_id: int, body: NoteBody, conn: ConnDep, user: CurrentUser) -> Escalation:
    """409 when someone else has already accepted it and not finished."""
    row = await _load(conn, user, alert_id)
    if row["closed_at"] is not None:
        raise conflict(f"alert {alert_id} is closed")
    if row["responder_id"] is not None and row["responder_id"] != user.id:
        raise conflict(f"alert {alert_id} was already accepted by someone else")
    if row["responder_id"] == user.id:
        return Escalation(**row)
    await conn.execute(
        "INSERT INTO alert_responses (alert_id, user_id, state) VALUES (%s, %s, 'accepted')", (alert_id, user.id))
    await conn.execute(
        "UPDATE alerts SET assigned_to = %(me)s, acknowledged_at = COALESCE(acknowledged_at, now()),"
        " acknowledged_by = COALESCE(acknowledged_by, %(me)s), updated_at = now() WHERE id = %(id)s",
        {"me": user.id, "id": alert_id})
    await conn.execute("DELETE FROM alert_timers WHERE alert_id = %s", (alert_id,))
    await _changed(conn, row, user, "accepted", {"note": body.note})
    return Escalation(**await _load(conn, user, alert_id))


@router.post("/{alert_id}/progress", response_model=Escalation, dependencies=[RESPONDERS],
             summary="Report progress: on_the_way, then arrived")
async def progress(alert_id: int, body: ProgressBody, conn: ConnDep, user: CurrentUser) -> Escalation:
    """Steps only move forward, and only the responder who accepted may report them."""
    row = await _load(conn, user, alert_id)
    _mine(row, user)
    if STEPS.index(body.state) <= STEPS.index(row["state"]):
        raise conflict(f"the response is already {row['state']}; {body.state} would go backwards")
    await conn.execute("UPDATE alert_responses SET state = %s, updated_at = now() WHERE alert_id = %s",
                       (body.state, alert_id))
    await _changed(conn, row, user, body.state, {"note": body.note})
    return Escalation(**await _load(conn, user, alert_id))


def _mine(row: dict[str, Any], user: User) -> None:
    if row["responder_id"] != user.id:
        raise conflict(f"accept alert {row['alert_id']} first; it is not your response")
    if row["state"] == "closed" or row["closed_at"] is not None:
        raise conflict(f"alert {row['alert_id']} is closed")


@router.post("/{alert_id}/close", response_model=Escalation, dependencies=[RESPONDERS],
             summary="Close the alert with an outcome")
async def close(alert_id: int, body: CloseBody, conn: ConnDep, user: CurrentUser) -> Escalation:
    """The responder closes their own response; operators and admins may close any open alert in scope."""
    row = await _load(conn, user, alert_id)
    if row["closed_at"] is not None:
        raise conflict(f"alert {alert_id} is already closed")
    if user.role == "community_worker":
        _mine(row, user)
    await conn.execute(
        "UPDATE alerts SET closed_at = now(), active = false, resolution = %(res)s,"
        " acknowledged_at = COALESCE(acknowledged_at, now()), acknowledged_by = COALESCE(acknowledged_by, %(me)s),"
        " updated_at = now() WHERE id = %(id)s", {"res": body.resolution, "me": user.id, "id": alert_id})
    await conn.execute("DELETE FROM alert_timers WHERE alert_id = %s", (alert_id,))
    await conn.execute(
        "INSERT INTO alert_responses (alert_id, user_id, state, outcome) VALUES (%s, %s, 'closed', %s)"
        " ON CONFLICT (alert_id) DO UPDATE SET state = 'closed', outcome = EXCLUDED.outcome, updated_at = now()",
        (alert_id, user.id, body.resolution))
    await _changed(conn, row, user, "resolved", {"resolution": body.resolution, "note": body.note})
    return Escalation(**await _load(conn, user, alert_id))


"""A responder's escalations: assign, accept → on the way → arrived → closed with an outcome, all on the timeline."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from psycopg import AsyncConnection
from pydantic import BaseModel, Field

from alerts import lifecycle
from alerts.errors import AlertError
from alerts.lifecycle import Actor
from alerts.model import RESOLUTIONS
from hub.api.deps import ConnDep, CurrentUser, require_roles
from hub.api.routes.alerts import refused
from hub.api.schemas import Body, Limit, Offset, Page, fetch_all, fetch_one, not_found, page
from hub.users import User, scope_filter

router = APIRouter(prefix="/api/escalations", tags=["escalations"])
# Each gate is read from the lifecycle's one table of who may do what.
VIEWERS = require_roles(*lifecycle.roles_for("accept"))
RESPONDERS = require_roles(*lifecycle.roles_for("progress"))
ACCEPTERS = require_roles(*lifecycle.roles_for("accept"))
CLOSERS = require_roles(*lifecycle.roles_for("close"))
DISPATCHERS = require_roles(*lifecycle.roles_for("assign"))


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
    row = await fetch_one(conn, f"{_SELECT} WHERE a.id = %(id)s AND {where}", {"id": alert_id, **params})
    if row is None:
        raise not_found("alert", alert_id)
    return row


@router.get("", response_model=Page[Escalation], dependencies=[VIEWERS],
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
    try:
        await lifecycle.assign(conn, alert_id, Actor.of_user(user), body.user_id, body.note)
    except AlertError as err:
        raise refused(err) from None
    return Escalation(**await _load(conn, user, alert_id))


@router.post("/{alert_id}/accept", response_model=Escalation, dependencies=[ACCEPTERS],
             summary="Take the alert: acknowledges it and stops the escalation ladder")
async def accept(alert_id: int, body: NoteBody, conn: ConnDep, user: CurrentUser) -> Escalation:
    """409 when someone else has already accepted it and not finished."""
    try:
        await lifecycle.accept(conn, alert_id, Actor.of_user(user), body.note)
    except AlertError as err:
        raise refused(err) from None
    return Escalation(**await _load(conn, user, alert_id))


@router.post("/{alert_id}/progress", response_model=Escalation, dependencies=[RESPONDERS],
             summary="Report progress: on_the_way, then arrived")
async def progress(alert_id: int, body: ProgressBody, conn: ConnDep, user: CurrentUser) -> Escalation:
    """Steps only move forward, and only the responder who accepted may report them."""
    try:
        await lifecycle.progress(conn, alert_id, Actor.of_user(user), body.state, body.note)
    except AlertError as err:
        raise refused(err) from None
    return Escalation(**await _load(conn, user, alert_id))


@router.post("/{alert_id}/close", response_model=Escalation, dependencies=[CLOSERS],
             summary="Close the alert with an outcome")
async def close(alert_id: int, body: CloseBody, conn: ConnDep, user: CurrentUser) -> Escalation:
    """The responder closes their own response; operators and admins may close any open alert in scope."""
    try:
        await lifecycle.close(conn, alert_id, Actor.of_user(user), body.resolution, body.note)
    except AlertError as err:
        raise refused(err) from None
    return Escalation(**await _load(conn, user, alert_id))

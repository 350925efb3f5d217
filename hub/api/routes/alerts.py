"""Alerts: list and filter within the user's scope, timeline, acknowledge, comment, resolve."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Response, status
from psycopg.rows import dict_row
from pydantic import BaseModel, ConfigDict, Field

from alerts import lifecycle
from alerts.dispatch import DISPATCH_OUTCOMES
from alerts.errors import AlertError, AlertNotFound, TransitionConflict, TransitionForbidden, TransitionInvalid
from alerts.lifecycle import Actor
from alerts.model import RESOLUTIONS
from hub.api.alert_list import Alert, ListedPage, list_page
from hub.api.deps import ConnDep, CurrentUser, HubDep, require_roles
from hub.api.schemas import fetch_one
from hub.users import User, scope_filter

router = APIRouter(prefix="/api/alerts", tags=["alerts"])

_COLUMNS = """a.id, a.resident_id, a.household_id, a.region_path, a.type, a.severity, a.active,
  a.acknowledged_at, a.acknowledged_by, a.closed_at, a.resolution, a.assigned_to, a.first_ts, a.last_ts,
  a.trigger_count, a.source_device, a.location, a.details, a.created_at, a.updated_at"""


class AlertPage(BaseModel):
    """A page of alerts, newest first; pass `next_before` as `before` for the next page."""

    items: list[Alert]
    next_before: int | None


class TimelineEntry(BaseModel):
    """One step in an alert's history."""

    id: int
    ts: datetime
    kind: str
    actor: str
    details: dict[str, Any]


class AckBody(BaseModel):
    """How the alert was acknowledged."""

    model_config = ConfigDict(extra="forbid")
    via: str = Field("console", max_length=40, description="console, phone, app...")
    note: str = Field("", max_length=1000)


class ResolveBody(BaseModel):
    """The outcome of an alert."""

    model_config = ConfigDict(extra="forbid")
    resolution: Literal[RESOLUTIONS] = Field(description="What happened")  # type: ignore[valid-type]
    note: str = Field("", max_length=2000)


class CommentBody(BaseModel):
    """A free-text note on the timeline."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=2000)


async def _load(conn: ConnDep, user: User, alert_id: int) -> dict[str, Any]:
    """Read one alert in scope; changes go through alerts.lifecycle, which takes the row lock."""
    where, params = scope_filter(user, "a.region_path", "a.resident_id")
    sql = f"SELECT {_COLUMNS} FROM alerts a WHERE a.id = %(id)s AND {where}"  # noqa: S608 - fragments are ours
    cur = conn.cursor(row_factory=dict_row)
    row = await (await cur.execute(sql, {"id": alert_id, **params})).fetchone()
    if row is None:
        # Out of scope looks exactly like absent: no hint that the alert exists.
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"alert {alert_id} not found")
    return row


@router.get("", response_model=ListedPage, summary="List alerts in your scope: urgent first, then newest")
async def list_alerts(
    conn: ConnDep,
    user: CurrentUser,
    state: Annotated[Literal["open", "closed", "all"], Query(description="open, closed or all")] = "all",
    type: Annotated[str | None, Query(max_length=40, description="alert type")] = None,
    severity: Annotated[str | None, Query(max_length=10)] = None,
    resident_id: Annotated[str | None, Query(max_length=64)] = None,
    community: Annotated[str | None, Query(max_length=120, description="a region path and everything below")] = None,
    q: Annotated[str | None, Query(max_length=60, description="the elder's name, or their or a contact's phone")]
    = None,
    before: Annotated[int | None, Query(ge=1, description="cursor: alerts with id below this")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ListedPage:
    """Each alert with the elder's name, age, community and address. Scope is part of the query."""
    return await list_page(conn, user, state=state, type=type, severity=severity, resident_id=resident_id,
                           community=community, q=q, before=before, limit=limit)


@router.get("/{alert_id}", response_model=Alert, summary="One alert")
async def get_alert(alert_id: int, conn: ConnDep, user: CurrentUser) -> Alert:
    """404 when absent or outside your scope."""
    return Alert(**await _load(conn, user, alert_id))


TIMELINE_MAX = 200


@router.get("/{alert_id}/timeline", response_model=list[TimelineEntry],
            summary="Every step of an alert, a page at a time")
async def timeline(
    alert_id: int,
    conn: ConnDep,
    user: CurrentUser,
    response: Response,
    before: Annotated[int | None, Query(ge=1, description="entries with an id below this (older)")] = None,
    after: Annotated[int | None, Query(ge=0, description="entries with an id above this (newer)")] = None,
    limit: Annotated[int, Query(ge=1, le=TIMELINE_MAX)] = TIMELINE_MAX,
) -> list[TimelineEntry]:
    """Oldest first within the page. Without a cursor: the latest `limit` entries, so the newest are always there.

    The `Link` header names the older (`prev`) and newer (`next`) pages when they exist.
    """
    if before is not None and after is not None:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "give before or after, not both")
    await _load(conn, user, alert_id)
    cur = conn.cursor(row_factory=dict_row)
    if after is not None:
        sql = ("SELECT id, ts, kind, actor, details FROM alert_events WHERE alert_id = %(id)s AND id > %(after)s"
               " ORDER BY id LIMIT %(limit)s")
    else:
        sql = ("SELECT * FROM (SELECT id, ts, kind, actor, details FROM alert_events WHERE alert_id = %(id)s"
               " AND id < %(before)s ORDER BY id DESC LIMIT %(limit)s) t ORDER BY id")
    rows = await (await cur.execute(sql, {"id": alert_id, "after": after, "before": before or 2**62,
                                          "limit": limit + 1})).fetchall()
    older = newer = False
    if after is not None:
        newer = len(rows) > limit
        rows = rows[:limit]
        older = after > 0
    else:
        older = len(rows) > limit
        rows = rows[-limit:] if older else rows
        newer = before is not None
    links = []
    if rows and older:
        links.append(f'</api/alerts/{alert_id}/timeline?before={rows[0]["id"]}&limit={limit}>; rel="prev"')
    if rows and newer:
        links.append(f'</api/alerts/{alert_id}/timeline?after={rows[-1]["id"]}&limit={limit}>; rel="next"')
    if links:
        response.headers["Link"] = ", ".join(links)
    return [TimelineEntry(**r) for r in rows]


def refused(err: AlertError) -> HTTPException:
    """The HTTP answer to a transition the lifecycle refused."""
    code = {AlertNotFound: status.HTTP_404_NOT_FOUND, TransitionForbidden: status.HTTP_403_FORBIDDEN,
            TransitionConflict: status.HTTP_409_CONFLICT, TransitionInvalid: status.HTTP_400_BAD_REQUEST}
    return HTTPException(code.get(type(err), status.HTTP_409_CONFLICT), str(err))


@router.post("/{alert_id}/ack", response_model=Alert, summary="Acknowledge: stops the escalation ladder",
             dependencies=[require_roles(*lifecycle.roles_for("acknowledge"))])
async def acknowledge(alert_id: int, body: AckBody, conn: ConnDep, user: CurrentUser) -> Alert:
    """Idempotent: a second acknowledgement changes nothing and is kept on the timeline as `seen`."""
    try:
        await lifecycle.acknowledge(conn, alert_id, Actor.of_user(user, body.via), body.note)
    except AlertError as err:
        raise refused(err) from None
    return Alert(**await _load(conn, user, alert_id))


@router.post("/{alert_id}/comment", response_model=TimelineEntry, summary="Add a note to the timeline",
             dependencies=[require_roles(*lifecycle.roles_for("comment"))])
async def comment(alert_id: int, body: CommentBody, conn: ConnDep, user: CurrentUser) -> TimelineEntry:
    """Comments are kept on the timeline with their author."""
    try:
        await lifecycle.comment(conn, alert_id, Actor.of_user(user), body.text)
    except AlertError as err:
        raise refused(err) from None
    cur = conn.cursor(row_factory=dict_row)
    entry = await (await cur.execute(
        "SELECT id, ts, kind, actor, details FROM alert_events WHERE alert_id = %s ORDER BY id DESC LIMIT 1",
        (alert_id,))).fetchone()
    assert entry is not None
    return TimelineEntry(**entry)


@router.post("/{alert_id}/resolve", response_model=Alert, summary="Close an alert with an outcome",
             dependencies=[require_roles(*lifecycle.roles_for("close"))])
async def resolve(alert_id: int, body: ResolveBody, conn: ConnDep, user: CurrentUser) -> Alert:
    """The same act as closing an escalation: a community worker must have accepted the alert first."""
    try:
        await lifecycle.close(conn, alert_id, Actor.of_user(user), body.resolution, body.note)
    except AlertError as err:
        raise refused(err) from None
    return Alert(**await _load(conn, user, alert_id))


class ConfirmEmergencyBody(BaseModel):
    """An operator judged the alert a real emergency: call 120/110 now."""

    model_config = ConfigDict(extra="forbid")
    service: Literal["120", "110"] | None = Field(None, description="Unset: what the alert's policy calls")
    note: str = Field("", max_length=1000)


class DispatchOut(BaseModel):
    """One emergency dispatch: the record read out to 120/110 and its outcome."""

    id: int
    alert_id: int
    service: str
    cause: str
    created_at: datetime
    record: dict[str, Any]
    text_zh: str
    text_en: str
    delivered: bool | None
    outcome: str | None
    outcome_ref: str | None
    outcome_note: str | None
    outcome_by: int | None
    outcome_at: datetime | None


class DispatchOutcomeBody(BaseModel):
    """What came of a dispatch call, as the operator heard it."""

    model_config = ConfigDict(extra="forbid")
    outcome: Literal[DISPATCH_OUTCOMES] = Field(description="ambulance_sent, police_sent...")  # type: ignore[valid-type]
    reference: str = Field("", max_length=100, description="The dispatch centre's case number")
    note: str = Field("", max_length=2000)


_DISPATCH_COLUMNS = ("id, alert_id, service, cause, created_at, record, text_zh, text_en, delivered, outcome,"
                     " outcome_ref, outcome_note, outcome_by, outcome_at")


@router.post("/{alert_id}/confirm-emergency", response_model=Alert, status_code=status.HTTP_202_ACCEPTED,
             summary="Confirm an emergency: dispatch 120/110 now",
             dependencies=[require_roles(*lifecycle.roles_for("confirm_emergency"))])
async def confirm_emergency(alert_id: int, body: ConfirmEmergencyBody, conn: ConnDep, user: CurrentUser,
                            hub: HubDep) -> Alert:
    """The engine builds the dispatch record and calls at once; 409 if closed or already dispatched."""
    try:
        await lifecycle.confirm_emergency(conn, alert_id, Actor.of_user(user), body.service,
                                          hub.engine.emergency_kind, body.note)
    except AlertError as err:
        raise refused(err) from None
    await conn.commit()
    hub.engine.wake()
    return Alert(**await _load(conn, user, alert_id))


@router.get("/{alert_id}/dispatches", response_model=list[DispatchOut], summary="Emergency dispatch records",
            dependencies=[require_roles("admin", "operator", "community_worker")])
async def dispatches(alert_id: int, conn: ConnDep, user: CurrentUser) -> list[DispatchOut]:
    """The records read out to 120/110 for this alert, oldest first, with their outcomes."""
    await _load(conn, user, alert_id)
    cur = conn.cursor(row_factory=dict_row)
    rows = await (await cur.execute(
        f"SELECT {_DISPATCH_COLUMNS} FROM alert_dispatches WHERE alert_id = %s ORDER BY id",  # noqa: S608
        (alert_id,))).fetchall()
    return [DispatchOut(**r) for r in rows]


@router.post("/{alert_id}/dispatches/{dispatch_id}/outcome", response_model=DispatchOut,
             summary="Record what came of a dispatch call",
             dependencies=[require_roles(*lifecycle.roles_for("dispatch_outcome"))])
async def dispatch_outcome(alert_id: int, dispatch_id: int, body: DispatchOutcomeBody, conn: ConnDep,
                           user: CurrentUser) -> DispatchOut:
    """Kept on the dispatch record and on the timeline; a later report replaces the earlier outcome."""
    try:
        await lifecycle.dispatch_outcome(conn, alert_id, dispatch_id, Actor.of_user(user), body.outcome,
                                         body.reference, body.note)
    except AlertError as err:
        raise refused(err) from None
    row = await fetch_one(conn, f"SELECT {_DISPATCH_COLUMNS} FROM alert_dispatches WHERE id = %s",  # noqa: S608
                          (dispatch_id,))
    assert row is not None
    return DispatchOut(**row)

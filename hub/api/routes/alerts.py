"""Alerts: list and filter within the user's scope, timeline, acknowledge, comment, resolve."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, status
from psycopg.rows import dict_row
from pydantic import BaseModel, ConfigDict, Field

from alerts.dispatch import DISPATCH_OUTCOMES
from alerts.model import RESOLUTIONS
from alerts.store import DUE_CHANNEL, add_event, feed
from hub.api.alert_list import ListedPage, list_page
from hub.api.deps import ConnDep, CurrentUser, HubDep, require_roles
from hub.users import User, scope_filter

router = APIRouter(prefix="/api/alerts", tags=["alerts"])

_COLUMNS = """a.id, a.resident_id, a.household_id, a.region_path, a.type, a.severity, a.active,
  a.acknowledged_at, a.acknowledged_by, a.closed_at, a.resolution, a.assigned_to, a.first_ts, a.last_ts,
  a.trigger_count, a.source_device, a.location, a.details, a.created_at, a.updated_at"""


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


async def _load(conn: ConnDep, user: User, alert_id: int, lock: bool = False) -> dict[str, Any]:
    where, params = scope_filter(user, "a.region_path", "a.resident_id")
    sql = f"SELECT {_COLUMNS} FROM alerts a WHERE a.id = %(id)s AND {where}"  # noqa: S608 - fragments are ours
    if lock:
        sql += " FOR UPDATE"
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


@router.get("/{alert_id}/timeline", response_model=list[TimelineEntry], summary="Every step of an alert")
async def timeline(alert_id: int, conn: ConnDep, user: CurrentUser) -> list[TimelineEntry]:
    """Creation, notifications, acknowledgement, escalation, comments, resolution, in order."""
    await _load(conn, user, alert_id)
    cur = conn.cursor(row_factory=dict_row)
    rows = await (await cur.execute(
        "SELECT id, ts, kind, actor, details FROM alert_events WHERE alert_id = %s ORDER BY id LIMIT 1000",
        (alert_id,),
    )).fetchall()
    return [TimelineEntry(**r) for r in rows]


@router.post("/{alert_id}/ack", response_model=Alert, summary="Acknowledge: stops the escalation ladder",
             dependencies=[require_roles("admin", "operator", "community_worker", "family")])
async def acknowledge(alert_id: int, body: AckBody, conn: ConnDep, user: CurrentUser) -> Alert:
    """Idempotent: a second acknowledgement is recorded but changes nothing."""
    row = await _load(conn, user, alert_id, lock=True)
    if row["acknowledged_at"] is None:
        await conn.execute(
            "UPDATE alerts SET acknowledged_at = now(), acknowledged_by = %s, updated_at = now() WHERE id = %s",
            (user.id, alert_id))
        await conn.execute("DELETE FROM alert_timers WHERE alert_id = %s", (alert_id,))
        await add_event(conn, alert_id, "acknowledged", user.username, {"via": body.via, "note": body.note})
        await _audit(conn, user, "alert.ack", alert_id)
        await feed(conn, "alert", row["region_path"], row["resident_id"],
                   {"alert_id": alert_id, "change": "acknowledged"})
    return Alert(**await _load(conn, user, alert_id))


@router.post("/{alert_id}/comment", response_model=TimelineEntry, summary="Add a note to the timeline")
async def comment(alert_id: int, body: CommentBody, conn: ConnDep, user: CurrentUser) -> TimelineEntry:
    """Comments are kept on the timeline with their author."""
    row = await _load(conn, user, alert_id)
    await add_event(conn, alert_id, "comment", user.username, {"text": body.text})
    await feed(conn, "alert", row["region_path"], row["resident_id"], {"alert_id": alert_id, "change": "comment"})
    cur = conn.cursor(row_factory=dict_row)
    entry = await (await cur.execute(
        "SELECT id, ts, kind, actor, details FROM alert_events WHERE alert_id = %s ORDER BY id DESC LIMIT 1",
        (alert_id,))).fetchone()
    assert entry is not None
    return TimelineEntry(**entry)


@router.post("/{alert_id}/resolve", response_model=Alert, summary="Close an alert with an outcome",
             dependencies=[require_roles("admin", "operator", "community_worker")])
async def resolve(alert_id: int, body: ResolveBody, conn: ConnDep, user: CurrentUser) -> Alert:
    """Resolving acknowledges too, stops escalation and frees the slot for a new alert of that type."""
    row = await _load(conn, user, alert_id, lock=True)
    if row["closed_at"] is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"alert {alert_id} is already closed")
    await conn.execute(
        "UPDATE alerts SET closed_at = now(), active = false, resolution = %s,"
        " acknowledged_at = COALESCE(acknowledged_at, now()), acknowledged_by = COALESCE(acknowledged_by, %s),"
        " updated_at = now() WHERE id = %s",
        (body.resolution, user.id, alert_id))
    await conn.execute("DELETE FROM alert_timers WHERE alert_id = %s", (alert_id,))
    await add_event(conn, alert_id, "resolved", user.username, {"resolution": body.resolution, "note": body.note})
    await _audit(conn, user, "alert.resolve", alert_id)
    await feed(conn, "alert", row["region_path"], row["resident_id"], {"alert_id": alert_id, "change": "resolved"})
    return Alert(**await _load(conn, user, alert_id))


async def _audit(conn: ConnDep, user: User, action: str, alert_id: int) -> None:
    await conn.execute("INSERT INTO audit_log (user_id, action, target) VALUES (%s, %s, %s)",
                       (user.id, action, f"alert:{alert_id}"))


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
             summary="Confirm an emergency: dispatch 120/110 now", dependencies=[require_roles("admin", "operator")])
async def confirm_emergency(alert_id: int, body: ConfirmEmergencyBody, conn: ConnDep, user: CurrentUser,
                            hub: HubDep) -> Alert:
    """The engine builds the dispatch record and calls at once; 409 if closed or already dispatched."""
    row = await _load(conn, user, alert_id, lock=True)
    if row["closed_at"] is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"alert {alert_id} is closed")
    done = await (await conn.execute(
        "SELECT id FROM alert_dispatches WHERE alert_id = %s ORDER BY id LIMIT 1", (alert_id,))).fetchone()
    if done is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"alert {alert_id} was already dispatched ({done[0]})")
    if body.service is not None:
        kind = f"emergency_{body.service}"
    else:
        flags = await (await conn.execute(
            "SELECT risk_flags FROM residents WHERE id = %s", (row["resident_id"],))).fetchone()
        kind = hub.engine.emergency_kind(row["type"], row["severity"], list(flags[0]) if flags else [])
    await conn.execute(
        "WITH t AS (INSERT INTO alert_timers (alert_id, step, due_at, jump) VALUES (%s, 0, now(), %s)"
        " ON CONFLICT (alert_id) DO UPDATE SET jump = EXCLUDED.jump, claimed_by = NULL, claimed_until = NULL"
        " RETURNING 1) SELECT pg_notify(%s, '') FROM t",
        (alert_id, kind, DUE_CHANNEL))
    await add_event(conn, alert_id, "emergency_confirmed", user.username,
                    {"service": kind.removeprefix("emergency_"), "note": body.note})
    await _audit(conn, user, "alert.confirm_emergency", alert_id)
    await feed(conn, "alert", row["region_path"], row["resident_id"],
               {"alert_id": alert_id, "change": "emergency_confirmed"})
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
             summary="Record what came of a dispatch call", dependencies=[require_roles("admin", "operator")])
async def dispatch_outcome(alert_id: int, dispatch_id: int, body: DispatchOutcomeBody, conn: ConnDep,
                           user: CurrentUser) -> DispatchOut:
    """Kept on the dispatch record and on the timeline; a later report replaces the earlier outcome."""
    row = await _load(conn, user, alert_id)
    cur = conn.cursor(row_factory=dict_row)
    updated = await (await cur.execute(
        "UPDATE alert_dispatches SET outcome = %s, outcome_ref = %s, outcome_note = %s, outcome_by = %s,"  # noqa: S608
        f" outcome_at = now() WHERE id = %s AND alert_id = %s RETURNING {_DISPATCH_COLUMNS}",
        (body.outcome, body.reference or None, body.note, user.id, dispatch_id, alert_id))).fetchone()
    if updated is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"dispatch {dispatch_id} of alert {alert_id} not found")
    await add_event(conn, alert_id, "dispatch_outcome", user.username,
                    {"dispatch_id": dispatch_id, "service": updated["service"], "outcome": body.outcome,
                     "reference": body.reference, "note": body.note})
    await _audit(conn, user, "alert.dispatch_outcome", alert_id)
    await feed(conn, "alert", row["region_path"], row["resident_id"],
               {"alert_id": alert_id, "change": "dispatch_outcome", "outcome": body.outcome})
    return DispatchOut(**updated)

"""Weekly home visits to elders living alone: plans, records and the community's visit rate (target 100%)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from hub.api.deps import ConnDep, CurrentUser, require_roles
from hub.api.routes.audit import record
from hub.api.routes.residents import ID, load_resident, resident_scope
from hub.api.schemas import Body, Limit, Offset, Page, bad_request, fetch_all, fetch_one, page

router = APIRouter(prefix="/api/visits", tags=["visits"])
WORKERS = require_roles("admin", "operator", "community_worker")

# Who needs a weekly visit.
VISIT_FLAG = "living_alone"
TARGET_RATE = 1.0


def week_start(day: date | None) -> date:
    """The Monday of the ISO week containing `day` (default: this week in China Standard Time)."""
    day = day or (datetime.now(UTC) + timedelta(hours=8)).date()
    return day - timedelta(days=day.weekday())


class PlanIn(Body):
    """Plan a resident's visit for a week."""

    resident_id: str = Field(pattern=ID)
    week_start: date | None = Field(None, description="any day of the week (its Monday is used); default this week")
    planned_for: date | None = None
    assigned_to: int | None = Field(None, ge=1, description="the community worker; default: the resident's")
    note: str = Field("", max_length=500)


class Plan(BaseModel):
    """A visit plan."""

    id: int
    resident_id: str
    week_start: date
    planned_for: date | None
    assigned_to: int | None
    note: str


class VisitIn(Body):
    """A visit that happened."""

    resident_id: str = Field(pattern=ID)
    visited_at: datetime | None = Field(None, description="default: now")
    outcome: Literal["well", "concern", "not_home", "referred"]
    notes: str = Field("", max_length=2000)


class Visit(BaseModel):
    """A recorded visit."""

    id: int
    resident_id: str
    visitor_id: int | None
    visited_at: datetime
    outcome: str
    notes: str
    plan_id: int | None


class DueResident(BaseModel):
    """An elder who needs a visit this week, and whether they had one."""

    resident_id: str
    name: str
    region_path: str
    address: str
    community_worker_id: int | None
    planned_for: date | None
    visited_at: datetime | None
    outcome: str | None
    visited: bool


class CommunityRate(BaseModel):
    """A community's visit rate for the week."""

    region_path: str
    due: int
    visited: int
    rate: float


class WeekView(BaseModel):
    """The weekly plan: who is due, who was visited, rates per community against the target."""

    week_start: date
    target: float
    due: int
    visited: int
    rate: float
    communities: list[CommunityRate]
    residents: list[DueResident]


# Week boundaries follow the platform's local time (China Standard Time, no DST).
_WEEK = "(%(ws)s::date::timestamp AT TIME ZONE 'Asia/Shanghai')"


@router.get("/week", response_model=WeekView, dependencies=[WORKERS],
            summary="Elders needing a visit this week, and the visit rate per community")
async def week(conn: ConnDep, user: CurrentUser,
               day: Annotated[date | None, Query(description="any day of the week; default today")] = None,
               only_unvisited: bool = False, limit: Limit = 200) -> WeekView:
    """A visit counts when its outcome is not `not_home`. Rates cover everyone due; the list is bounded."""
    ws = week_start(day)
    where, params = resident_scope(user)
    params |= {"ws": ws, "flag": VISIT_FLAG, "limit": limit}
    base = (f"""SELECT r.id AS resident_id, r.name, h.region_path, h.address, r.community_worker_id,
        p.planned_for, v.visited_at, v.outcome, (v.id IS NOT NULL AND v.outcome <> 'not_home') AS visited
      FROM residents r JOIN households h ON h.id = r.household_id
      LEFT JOIN visit_plans p ON p.resident_id = r.id AND p.week_start = %(ws)s
      LEFT JOIN LATERAL (SELECT id, visited_at, outcome FROM visits x WHERE x.resident_id = r.id
          AND x.visited_at >= {_WEEK} AND x.visited_at < {_WEEK} + interval '7 days'
          ORDER BY (x.outcome <> 'not_home') DESC, x.visited_at DESC LIMIT 1) v ON true
      WHERE %(flag)s = ANY(r.risk_flags) AND {where}""")  # noqa: S608 - fragments are ours
    communities = await fetch_all(
        conn, f"SELECT region_path, count(*) AS due, count(*) FILTER (WHERE visited) AS visited"  # noqa: S608
        f" FROM ({base}) d GROUP BY region_path ORDER BY region_path LIMIT 1000", params)
    listed = await fetch_all(
        conn, f"SELECT * FROM ({base}) d {'WHERE NOT visited' if only_unvisited else ''}"  # noqa: S608
        " ORDER BY visited, region_path, resident_id LIMIT %(limit)s", params)
    due = sum(c["due"] for c in communities)
    visited = sum(c["visited"] for c in communities)
    return WeekView(
        week_start=ws, target=TARGET_RATE, due=due, visited=visited, rate=visited / due if due else 1.0,
        communities=[CommunityRate(**c, rate=c["visited"] / c["due"]) for c in communities],
        residents=[DueResident(**r) for r in listed])


@router.get("/plans", response_model=Page[Plan], dependencies=[WORKERS], summary="Visit plans for a week")
async def list_plans(conn: ConnDep, user: CurrentUser, day: date | None = None,
                     limit: Limit = 50, offset: Offset = 0) -> Page[Plan]:
    """Plans of residents in your scope."""
    where, params = resident_scope(user)
    rows = await fetch_all(
        conn, "SELECT p.id, p.resident_id, p.week_start, p.planned_for, p.assigned_to, p.note"  # noqa: S608
        " FROM visit_plans p JOIN residents r ON r.id = p.resident_id JOIN households h ON h.id = r.household_id"
        f" WHERE p.week_start = %(ws)s AND {where} ORDER BY p.planned_for NULLS LAST, p.id"
        " LIMIT %(limit)s OFFSET %(offset)s",
        {**params, "ws": week_start(day), "limit": limit + 1, "offset": offset})
    items, nxt = page(rows, limit, offset)
    return Page[Plan](items=[Plan(**r) for r in items], next_offset=nxt)


@router.post("/plans", response_model=Plan, status_code=201, dependencies=[WORKERS],
             summary="Plan (or re-plan) a resident's visit for a week")
async def create_plan(body: PlanIn, conn: ConnDep, user: CurrentUser) -> Plan:
    """One plan per resident per week: planning again updates it. Audited."""
    resident = await load_resident(conn, user, body.resident_id)
    ws = week_start(body.week_start)
    # Days apart rather than ws + 7 days, which overflows in the last week of year 9999.
    if body.planned_for is not None and not 0 <= (body.planned_for - ws).days < 7:
        raise bad_request(f"planned_for must fall in the week starting {ws}")
    if body.assigned_to is not None and await fetch_one(
            conn, "SELECT 1 AS ok FROM users WHERE id = %s", (body.assigned_to,)) is None:
        raise bad_request(f"no user {body.assigned_to} to assign the visit to")
    row = await fetch_one(
        conn, "INSERT INTO visit_plans (resident_id, week_start, planned_for, assigned_to, note, created_by)"
        " VALUES (%(rid)s, %(ws)s, %(pf)s, COALESCE(%(to)s::bigint, %(cw)s::bigint), %(note)s, %(uid)s)"
        " ON CONFLICT (resident_id, week_start) DO UPDATE SET planned_for = EXCLUDED.planned_for,"
        " assigned_to = EXCLUDED.assigned_to, note = EXCLUDED.note"
        " RETURNING id, resident_id, week_start, planned_for, assigned_to, note",
        {"rid": body.resident_id, "ws": ws, "pf": body.planned_for, "to": body.assigned_to,
         "cw": resident["community_worker_id"], "note": body.note, "uid": user.id})
    assert row is not None
    await record(conn, user, "visit.plan", f"resident:{body.resident_id}", {"week_start": ws.isoformat()})
    return Plan(**row)


@router.get("", response_model=Page[Visit], dependencies=[WORKERS], summary="Recorded visits, newest first")
async def list_visits(conn: ConnDep, user: CurrentUser, limit: Limit = 50, offset: Offset = 0,
                      resident_id: Annotated[str | None, Query(max_length=64)] = None) -> Page[Visit]:
    """Visits to residents in your scope."""
    where, params = resident_scope(user)
    clauses = [where]
    if resident_id is not None:
        clauses.append("v.resident_id = %(rid)s")
        params["rid"] = resident_id
    rows = await fetch_all(
        conn, "SELECT v.id, v.resident_id, v.visitor_id, v.visited_at, v.outcome, v.notes, v.plan_id"  # noqa: S608
        " FROM visits v JOIN residents r ON r.id = v.resident_id JOIN households h ON h.id = r.household_id"
        f" WHERE {' AND '.join(clauses)} ORDER BY v.visited_at DESC, v.id DESC LIMIT %(limit)s OFFSET %(offset)s",
        {**params, "limit": limit + 1, "offset": offset})
    items, nxt = page(rows, limit, offset)
    return Page[Visit](items=[Visit(**r) for r in items], next_offset=nxt)


@router.post("", response_model=Visit, status_code=201, dependencies=[WORKERS], summary="Record a visit")
async def create_visit(body: VisitIn, conn: ConnDep, user: CurrentUser) -> Visit:
    """Linked to the week's plan when there is one. Audited."""
    await load_resident(conn, user, body.resident_id)
    at = body.visited_at or datetime.now(UTC)
    if at.tzinfo is None:
        raise bad_request("visited_at needs a time zone, e.g. 2025-03-01T10:00:00+08:00")
    if at > datetime.now(UTC) + timedelta(minutes=5):
        raise bad_request("visited_at is in the future")
    params: dict[str, Any] = {"rid": body.resident_id, "uid": user.id, "at": at, "outcome": body.outcome,
                              "notes": body.notes, "ws": week_start((at + timedelta(hours=8)).date())}
    row = await fetch_one(
        conn, "INSERT INTO visits (resident_id, visitor_id, visited_at, outcome, notes, plan_id)"
        " VALUES (%(rid)s, %(uid)s, %(at)s, %(outcome)s, %(notes)s, (SELECT id FROM visit_plans"
        " WHERE resident_id = %(rid)s AND week_start = %(ws)s))"
        " RETURNING id, resident_id, visitor_id, visited_at, outcome, notes, plan_id", params)
    assert row is not None
    await record(conn, user, "visit.record", f"resident:{body.resident_id}", {"visit_id": row["id"]})
    return Visit(**row)

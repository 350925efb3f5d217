"""Households and residents: address, home coordinates, contacts in priority order, medical notes, risk flags."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from psycopg import AsyncConnection
from pydantic import BaseModel, Field

from hub.api.deps import ConnDep, CurrentUser, require_roles
from hub.api.routes.audit import record
from hub.api.routes.regions import region_in_scope
from hub.api.schemas import (
    Body,
    Limit,
    Offset,
    Page,
    bad_request,
    conflict,
    fetch_all,
    fetch_one,
    not_found,
    page,
)
from hub.users import User, below, like_literal, scope_filter

router = APIRouter(tags=["residents"])

ID = r"^[A-Za-z0-9_-]{1,64}$"
EDITORS = require_roles("admin", "operator", "community_worker")
CREATORS = require_roles("admin", "operator")


class HouseholdIn(Body):
    """A new household in a community of your scope."""

    id: str = Field(pattern=ID)
    region_path: str = Field(max_length=120, description="the community, e.g. sz/futian/lianhua")
    address: str = Field("", max_length=300)
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)


class HouseholdPatch(Body):
    """Fields of a household that may change."""

    address: str | None = Field(None, max_length=300)
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)


class Household(BaseModel):
    """A household as stored."""

    id: str
    region_path: str
    address: str
    lat: float | None
    lon: float | None


class ContactIn(Body):
    """A contact; the list order is the calling order."""

    name: str = Field(min_length=1, max_length=100)
    relation: str = Field("", max_length=40, description="son, daughter, neighbour...")
    phone: str | None = Field(None, pattern=r"^\+?[0-9 -]{3,20}$")
    email: str | None = Field(None, pattern=r"^[^@\s]+@[^@\s]+$", max_length=200)
    webhook_url: str | None = Field(None, pattern=r"^https?://", max_length=500)


class Contact(ContactIn):
    """A stored contact with its position (1 is called first)."""

    position: int


class ResidentIn(Body):
    """A new resident of an existing household."""

    id: str = Field(pattern=ID)
    household_id: str = Field(pattern=ID)
    name: str = Field(min_length=1, max_length=100)
    birth_year: int | None = Field(None, ge=1890, le=2030)
    gender: str | None = Field(None, max_length=10)
    phone: str | None = Field(None, pattern=r"^\+?[0-9 -]{3,20}$")
    medical_notes: str = Field("", max_length=4000)
    risk_flags: list[Annotated[str, Field(pattern=r"^[a-z0-9_]{1,40}$")]] = Field(
        default_factory=list, max_length=20, description="e.g. living_alone, dementia, heart_condition")
    community_worker_id: int | None = Field(None, ge=1, description="a community worker covering the household")
    contacts: list[ContactIn] = Field(default_factory=list, max_length=10)


class ResidentPatch(Body):
    """Fields of a resident that may change (contacts have their own endpoint)."""

    name: str | None = Field(None, min_length=1, max_length=100)
    birth_year: int | None = Field(None, ge=1890, le=2030)
    gender: str | None = Field(None, max_length=10)
    phone: str | None = Field(None, pattern=r"^\+?[0-9 -]{3,20}$")
    medical_notes: str | None = Field(None, max_length=4000)
    risk_flags: list[Annotated[str, Field(pattern=r"^[a-z0-9_]{1,40}$")]] | None = Field(None, max_length=20)
    community_worker_id: int | None = Field(None, ge=1)


class ContactsIn(Body):
    """The whole contact list, in calling order."""

    contacts: list[ContactIn] = Field(max_length=10)


class Resident(BaseModel):
    """A resident in a list."""

    id: str
    household_id: str
    region_path: str
    name: str
    birth_year: int | None
    gender: str | None
    phone: str | None
    risk_flags: list[str]
    community_worker_id: int | None
    address: str


class DeviceBrief(BaseModel):
    """A device of the resident or the household, with its health."""

    id: str
    type: str
    room: str | None
    status: str
    last_seen: datetime | None
    online: bool | None
    battery: float | None
    worn: bool | None


class Vital(BaseModel):
    """The latest value of one metric."""

    value: float
    ts: datetime


class ResidentDetail(Resident):
    """Everything the resident page shows."""

    medical_notes: str
    household: Household
    contacts: list[Contact]
    devices: list[DeviceBrief]
    latest_vitals: dict[str, Vital]
    open_alerts: int
    last_visit_at: datetime | None


_RESIDENT_COLS = """r.id, r.household_id, h.region_path, r.name, r.birth_year, r.gender, r.phone, r.risk_flags,
  r.community_worker_id, h.address"""


def resident_scope(user: User) -> tuple[str, dict[str, Any]]:
    """WHERE fragment for `residents r JOIN households h`."""
    return scope_filter(user, "h.region_path", "r.id")


async def load_resident(conn: AsyncConnection[Any], user: User, resident_id: str) -> dict[str, Any]:
    """A resident row in scope, or 404."""
    where, params = resident_scope(user)
    row = await fetch_one(conn, f"SELECT {_RESIDENT_COLS}, r.medical_notes FROM residents r"  # noqa: S608
                          f" JOIN households h ON h.id = r.household_id WHERE r.id = %(rid)s AND {where}",
                          {"rid": resident_id, **params})
    if row is None:
        raise not_found("resident", resident_id)
    return row


async def load_household(conn: AsyncConnection[Any], user: User, household_id: str) -> dict[str, Any]:
    """A household row in scope (for family: their resident's household), or 404."""
    where, params = scope_filter(user, "h.region_path", "NULL")
    if user.role == "family":
        where = "EXISTS (SELECT 1 FROM residents r WHERE r.household_id = h.id AND r.id = %(scope_resident)s)"
        params = {"scope_resident": user.resident_id}
    row = await fetch_one(conn, "SELECT id, region_path, address, lat, lon FROM households h"  # noqa: S608
                          f" WHERE h.id = %(hid)s AND {where}", {"hid": household_id, **params})
    if row is None:
        raise not_found("household", household_id)
    return row


async def _check_worker(conn: AsyncConnection[Any], worker_id: int | None, region_path: str) -> None:
    if worker_id is None:
        return
    row = await fetch_one(conn, "SELECT 1 AS ok FROM users WHERE id = %(id)s AND role = 'community_worker'"
                          " AND (%(p)s = scope_path OR starts_with(%(p)s, scope_path || '/'))",
                          {"id": worker_id, "p": region_path})
    if row is None:
        raise bad_request(f"user {worker_id} is not a community worker covering {region_path}")


async def _replace_contacts(conn: AsyncConnection[Any], resident_id: str, contacts: list[ContactIn]) -> None:
    # Two editors at once: the row lock makes the second DELETE see the first one's committed contacts.
    await conn.execute("SELECT 1 FROM residents WHERE id = %s FOR UPDATE", (resident_id,))
    await conn.execute("DELETE FROM contacts WHERE resident_id = %s", (resident_id,))
    for position, c in enumerate(contacts, start=1):
        await conn.execute("INSERT INTO contacts (resident_id, position, name, relation, phone, email, webhook_url)"
                           " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                           (resident_id, position, c.name, c.relation, c.phone, c.email, c.webhook_url))


async def _contacts(conn: AsyncConnection[Any], resident_id: str) -> list[dict[str, Any]]:
    return await fetch_all(conn, "SELECT position, name, relation, phone, email, webhook_url FROM contacts"
                           " WHERE resident_id = %s ORDER BY position", (resident_id,))


# --- households ---------------------------------------------------------------------------------------------


@router.get("/api/households", response_model=Page[Household], summary="Households in your scope",
            dependencies=[EDITORS], tags=["households"])
async def list_households(conn: ConnDep, user: CurrentUser, limit: Limit = 50, offset: Offset = 0,
                          region_path: Annotated[str | None, Query(max_length=120)] = None) -> Page[Household]:
    """Ordered by id."""
    where, params = scope_filter(user, "h.region_path", "NULL")
    clauses = [where]
    if region_path is not None:
        clauses.append("(h.region_path = %(rp)s OR h.region_path LIKE %(rp_like)s)")
        params |= {"rp": region_path, "rp_like": below(region_path)}
    rows = await fetch_all(conn, "SELECT id, region_path, address, lat, lon FROM households h"  # noqa: S608
                           f" WHERE {' AND '.join(clauses)} ORDER BY id LIMIT %(limit)s OFFSET %(offset)s",
                           {**params, "limit": limit + 1, "offset": offset})
    items, nxt = page(rows, limit, offset)
    return Page[Household](items=[Household(**r) for r in items], next_offset=nxt)


@router.get("/api/households/{household_id}", response_model=Household, summary="One household",
            tags=["households"])
async def get_household(household_id: str, conn: ConnDep, user: CurrentUser) -> Household:
    """404 when absent or outside your scope."""
    return Household(**await load_household(conn, user, household_id))


@router.post("/api/households", response_model=Household, status_code=201, dependencies=[CREATORS],
             summary="Create a household (idempotent)", tags=["households"],
             responses={200: {"description": "an identical household already existed"},
                        409: {"description": "the id exists with different fields"}})
async def create_household(body: HouseholdIn, conn: ConnDep, user: CurrentUser, response: Response) -> Household:
    """201 created; 200 when an identical household exists; 409 when the id is taken with other fields."""
    if not await region_in_scope(conn, user, body.region_path):
        raise not_found("region", body.region_path)
    row = await fetch_one(conn, "INSERT INTO households (id, region_path, address, lat, lon)"
                          " VALUES (%(id)s, %(region_path)s, %(address)s, %(lat)s, %(lon)s)"
                          " ON CONFLICT (id) DO NOTHING RETURNING id, region_path, address, lat, lon",
                          body.model_dump())
    if row is None:
        existing = await fetch_one(conn, "SELECT id, region_path, address, lat, lon FROM households"
                                   " WHERE id = %s", (body.id,))
        if existing != body.model_dump():
            raise conflict(f"household {body.id} already exists with different fields")
        response.status_code = status.HTTP_200_OK
        return Household(**existing)
    await record(conn, user, "household.create", f"household:{body.id}")
    return Household(**row)


@router.patch("/api/households/{household_id}", response_model=Household, dependencies=[EDITORS],
              summary="Change a household's address or coordinates", tags=["households"])
async def patch_household(household_id: str, body: HouseholdPatch, conn: ConnDep, user: CurrentUser) -> Household:
    """Only the fields sent change; audited."""
    await load_household(conn, user, household_id)
    changes = body.model_dump(include=body.model_fields_set)
    if "address" in changes and changes["address"] is None:
        raise bad_request("a household's address can be changed but not removed")
    if changes:
        sets = ", ".join(f"{k} = %({k})s" for k in changes)
        await conn.execute(f"UPDATE households SET {sets} WHERE id = %(hid)s",  # noqa: S608 - keys are field names
                           {**changes, "hid": household_id})
        await record(conn, user, "household.update", f"household:{household_id}", {"fields": sorted(changes)})
    return Household(**await load_household(conn, user, household_id))


# --- residents ----------------------------------------------------------------------------------------------


@router.get("/api/residents", response_model=Page[Resident], summary="Residents in your scope")
async def list_residents(
    conn: ConnDep,
    user: CurrentUser,
    limit: Limit = 50,
    offset: Offset = 0,
    region_path: Annotated[str | None, Query(max_length=120)] = None,
    risk_flag: Annotated[str | None, Query(max_length=40)] = None,
    q: Annotated[str | None, Query(max_length=60, description="matches id or name")] = None,
) -> Page[Resident]:
    """Ordered by id."""
    where, params = resident_scope(user)
    clauses = [where]
    if region_path is not None:
        clauses.append("(h.region_path = %(rp)s OR h.region_path LIKE %(rp_like)s)")
        params |= {"rp": region_path, "rp_like": below(region_path)}
    if risk_flag is not None:
        clauses.append("%(flag)s = ANY(r.risk_flags)")
        params["flag"] = risk_flag
    if q:
        clauses.append("(r.id ILIKE %(q)s OR r.name ILIKE %(q)s)")
        params["q"] = "%" + like_literal(q) + "%"
    rows = await fetch_all(conn, f"SELECT {_RESIDENT_COLS} FROM residents r"  # noqa: S608
                           f" JOIN households h ON h.id = r.household_id WHERE {' AND '.join(clauses)}"
                           " ORDER BY r.id LIMIT %(limit)s OFFSET %(offset)s",
                           {**params, "limit": limit + 1, "offset": offset})
    items, nxt = page(rows, limit, offset)
    return Page[Resident](items=[Resident(**r) for r in items], next_offset=nxt)


@router.get("/api/residents/{resident_id}", response_model=ResidentDetail,
            summary="A resident with household, contacts, devices, latest vitals")
async def get_resident(resident_id: str, conn: ConnDep, user: CurrentUser) -> ResidentDetail:
    """404 when absent or outside your scope."""
    row = await load_resident(conn, user, resident_id)
    household = await fetch_one(conn, "SELECT id, region_path, address, lat, lon FROM households WHERE id = %s",
                                (row["household_id"],))
    devices = await fetch_all(
        conn, "SELECT d.id, d.type, d.room, d.status, s.last_seen, s.online, s.battery, s.worn FROM devices d"
        " LEFT JOIN device_status s ON s.device_id = d.id"
        " WHERE d.resident_id = %(rid)s OR (d.resident_id IS NULL AND d.household_id = %(hid)s)"
        " ORDER BY d.id LIMIT 100", {"rid": resident_id, "hid": row["household_id"]})
    vitals = await fetch_all(
        conn, "SELECT DISTINCT ON (metric) metric, value, ts FROM readings WHERE resident_id = %s"
        " AND ts > now() - interval '30 days' ORDER BY metric, ts DESC", (resident_id,))
    extra = await fetch_one(
        conn, "SELECT (SELECT count(*) FROM alerts WHERE resident_id = %(rid)s AND closed_at IS NULL) AS open_alerts,"
        " (SELECT max(visited_at) FROM visits WHERE resident_id = %(rid)s) AS last_visit_at", {"rid": resident_id})
    assert household is not None and extra is not None
    return ResidentDetail(
        **row, household=Household(**household),
        contacts=[Contact(**c) for c in await _contacts(conn, resident_id)],
        devices=[DeviceBrief(**d) for d in devices],
        latest_vitals={v["metric"]: Vital(value=v["value"], ts=v["ts"]) for v in vitals},
        open_alerts=extra["open_alerts"], last_visit_at=extra["last_visit_at"])


@router.post("/api/residents", response_model=ResidentDetail, status_code=201, dependencies=[CREATORS],
             summary="Create a resident with contacts (idempotent)",
             responses={200: {"description": "an identical resident already existed"},
                        409: {"description": "the id exists with different fields"}})
async def create_resident(body: ResidentIn, conn: ConnDep, user: CurrentUser, response: Response) -> ResidentDetail:
    """201 created; 200 when an identical resident (incl. contacts) exists; 409 when the id is taken otherwise."""
    household = await load_household(conn, user, body.household_id)
    await _check_worker(conn, body.community_worker_id, household["region_path"])
    fields = body.model_dump(exclude={"contacts"})
    row = await fetch_one(
        conn, "INSERT INTO residents (id, household_id, name, birth_year, gender, phone, medical_notes, risk_flags,"
        " community_worker_id) VALUES (%(id)s, %(household_id)s, %(name)s, %(birth_year)s, %(gender)s, %(phone)s,"
        " %(medical_notes)s, %(risk_flags)s, %(community_worker_id)s) ON CONFLICT (id) DO NOTHING RETURNING id",
        fields)
    if row is None:
        existing = await fetch_one(conn, "SELECT id, household_id, name, birth_year, gender, phone, medical_notes,"
                                   " risk_flags, community_worker_id FROM residents WHERE id = %s", (body.id,))
        contacts = [{k: v for k, v in c.items() if k != "position"} for c in await _contacts(conn, body.id)]
        if existing != fields or contacts != [c.model_dump() for c in body.contacts]:
            raise conflict(f"resident {body.id} already exists with different fields")
        response.status_code = status.HTTP_200_OK
        return await get_resident(body.id, conn, user)
    await _replace_contacts(conn, body.id, body.contacts)
    await record(conn, user, "resident.create", f"resident:{body.id}")
    return await get_resident(body.id, conn, user)


@router.patch("/api/residents/{resident_id}", response_model=ResidentDetail, dependencies=[EDITORS],
              summary="Change a resident's details, notes, risk flags or community worker")
async def patch_resident(resident_id: str, body: ResidentPatch, conn: ConnDep, user: CurrentUser) -> ResidentDetail:
    """Only the fields sent change; audited with the names of the fields changed."""
    row = await load_resident(conn, user, resident_id)
    changes = body.model_dump(include=body.model_fields_set)
    if "name" in changes and changes["name"] is None:
        raise bad_request("name cannot be empty")
    if changes.get("risk_flags", []) is None:
        changes["risk_flags"] = []
    if "community_worker_id" in changes:
        await _check_worker(conn, changes["community_worker_id"], row["region_path"])
    if changes:
        sets = ", ".join(f"{k} = %({k})s" for k in changes)
        await conn.execute(f"UPDATE residents SET {sets} WHERE id = %(rid)s",  # noqa: S608 - keys are field names
                           {**changes, "rid": resident_id})
        await record(conn, user, "resident.update", f"resident:{resident_id}", {"fields": sorted(changes)})
    return await get_resident(resident_id, conn, user)


@router.put("/api/residents/{resident_id}/contacts", response_model=list[Contact], dependencies=[EDITORS],
            summary="Replace the contact list (order = calling order)")
async def put_contacts(resident_id: str, body: ContactsIn, conn: ConnDep, user: CurrentUser) -> list[Contact]:
    """Audited."""
    await load_resident(conn, user, resident_id)
    await _replace_contacts(conn, resident_id, body.contacts)
    await record(conn, user, "resident.contacts", f"resident:{resident_id}", {"count": len(body.contacts)})
    return [Contact(**c) for c in await _contacts(conn, resident_id)]

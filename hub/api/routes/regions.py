"""The region tree (city → district → community): list within scope and create."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response, status
from psycopg import AsyncConnection
from pydantic import BaseModel, Field

from hub.api.deps import ConnDep, CurrentUser, require_roles
from hub.api.routes.audit import record
from hub.api.schemas import Body, Limit, Offset, Page, conflict, fetch_all, fetch_one, not_found, page
from hub.users import User, scope_filter

router = APIRouter(prefix="/api/regions", tags=["regions"])

_DEPTH = {"city": 1, "district": 2, "community": 3}


class RegionIn(Body):
    """A new region; its parent must exist and lie in your scope (or be your scope)."""

    path: str = Field(pattern=r"^[a-z0-9_-]+(/[a-z0-9_-]+){0,2}$", max_length=120,
                      description="e.g. sz/futian/lianhua; lower-case segments")
    level: Literal["city", "district", "community"]
    name: str = Field(min_length=1, max_length=100, description="display name, e.g. 莲花街道")
    name_en: str | None = Field(None, max_length=100)


class Region(BaseModel):
    """A region as stored."""

    path: str
    level: str
    name: str
    name_en: str | None


async def region_in_scope(conn: AsyncConnection[Any], user: User, path: str) -> bool:
    """True when the region exists and the user's scope covers it (checked in SQL)."""
    where, params = scope_filter(user, "g.path", "NULL")
    row = await fetch_one(conn, f"SELECT 1 AS ok FROM regions g WHERE g.path = %(p)s AND {where}",  # noqa: S608
                          {"p": path, **params})
    return row is not None


@router.get("", response_model=Page[Region], summary="Regions in your scope",
            dependencies=[require_roles("admin", "operator", "community_worker")])
async def list_regions(conn: ConnDep, user: CurrentUser, limit: Limit = 200, offset: Offset = 0,
                       level: Annotated[Literal["city", "district", "community"] | None, Query()] = None,
                       ) -> Page[Region]:
    """Ordered by path, so a tree reads top-down."""
    where, params = scope_filter(user, "g.path", "NULL")
    clauses = [where]
    if level is not None:
        clauses.append("g.level = %(level)s")
        params["level"] = level
    rows = await fetch_all(conn, "SELECT path, level, name, name_en FROM regions g"  # noqa: S608
                           f" WHERE {' AND '.join(clauses)} ORDER BY path LIMIT %(limit)s OFFSET %(offset)s",
                           {**params, "limit": limit + 1, "offset": offset})
    items, nxt = page(rows, limit, offset)
    return Page[Region](items=[Region(**r) for r in items], next_offset=nxt)


@router.post("", response_model=Region, status_code=201, summary="Create a region (idempotent)",
             dependencies=[require_roles("admin", "operator")],
             responses={200: {"description": "an identical region already existed"},
                        409: {"description": "the path exists with different fields"}})
async def create_region(body: RegionIn, conn: ConnDep, user: CurrentUser, response: Response) -> Region:
    """201 created; 200 when an identical region exists; 409 when the path exists with other fields."""
    if body.path.count("/") + 1 != _DEPTH[body.level]:
        raise conflict(f"a {body.level} path has {_DEPTH[body.level]} segment(s); {body.path!r} does not")
    parent = body.path.rsplit("/", 1)[0] if "/" in body.path else None
    # The parent must be inside your scope (or be it), which also proves it exists.
    if (parent is None and not user.is_platform_wide) or (
            parent is not None and not await region_in_scope(conn, user, parent)):
        raise not_found("parent region", parent or "(none: cities need platform-wide access)")
    row = await fetch_one(conn, "INSERT INTO regions (path, level, name, name_en) VALUES (%s, %s, %s, %s)"
                          " ON CONFLICT (path) DO NOTHING RETURNING path, level, name, name_en",
                          (body.path, body.level, body.name, body.name_en))
    if row is None:
        existing = await fetch_one(conn, "SELECT path, level, name, name_en FROM regions WHERE path = %s",
                                   (body.path,))
        if existing != body.model_dump():
            raise conflict(f"region {body.path} already exists with different fields")
        response.status_code = status.HTTP_200_OK
        return Region(**existing)
    await record(conn, user, "region.create", f"region:{body.path}")
    return Region(**row)

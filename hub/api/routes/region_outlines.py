"""A community's outline (a polygon of [lon, lat] points), drawn on the overview map."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from psycopg.types.json import Jsonb
from pydantic import Field

from hub.api.deps import ConnDep, CurrentUser, require_roles
from hub.api.routes.audit import record
from hub.api.routes.regions import region_in_scope
from hub.api.schemas import Body, not_found

router = APIRouter(prefix="/api/regions", tags=["regions"])

Lat = Annotated[float, Field(ge=-90, le=90)]
Lon = Annotated[float, Field(ge=-180, le=180)]


class OutlineIn(Body):
    """The outline's corner points as [lon, lat] (GeoJSON order); null removes it."""

    polygon: list[tuple[Lon, Lat]] | None = Field(min_length=3, max_length=500)


@router.put("/{path:path}/outline", response_model=OutlineIn, dependencies=[require_roles("admin", "operator")],
            summary="Set or remove a region's outline")
async def put_outline(path: str, body: OutlineIn, conn: ConnDep, user: CurrentUser) -> OutlineIn:
    """404 when the region is absent or outside your scope. Audited."""
    if not await region_in_scope(conn, user, path):
        raise not_found("region", path)
    await conn.execute("UPDATE regions SET outline = %s WHERE path = %s",
                       (Jsonb([list(p) for p in body.polygon]) if body.polygon else None, path))
    await record(conn, user, "region.outline", f"region:{path}", {"points": len(body.polygon or [])})
    return body

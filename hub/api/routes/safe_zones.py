"""Safe zones of a resident for anti-wandering: circles or polygons."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from psycopg.types.json import Jsonb
from pydantic import Field, model_validator

from hub.api.deps import ConnDep, CurrentUser, HubDep, require_roles
from hub.api.routes.audit import record
from hub.api.routes.residents import load_resident
from hub.api.schemas import Body, fetch_all

router = APIRouter(tags=["residents"])

Lat = Annotated[float, Field(ge=-90, le=90)]
Lon = Annotated[float, Field(ge=-180, le=180)]


class SafeZone(Body):
    """A circle (lat, lon, radius_m) or a polygon of [lon, lat] points."""

    name: str = Field("home", min_length=1, max_length=60, description="What the zone is (home, park...)")
    lat: Lat | None = None
    lon: Lon | None = None
    radius_m: float | None = Field(None, gt=0, le=50_000, description="Radius of a circular zone in metres")
    polygon: list[tuple[Lon, Lat]] | None = Field(None, min_length=3, max_length=200,
                                                 description="Corner points [lon, lat] of a polygon zone")

    @model_validator(mode="after")
    def _circle_or_polygon(self) -> SafeZone:
        circle = None not in (self.lat, self.lon, self.radius_m)
        if circle == (self.polygon is not None):
            raise ValueError("give either lat, lon and radius_m (a circle) or polygon, not both")
        return self


class SafeZones(Body):
    """The complete set of a resident's safe zones."""

    zones: list[SafeZone] = Field(max_length=20)


@router.get("/api/residents/{resident_id}/safe-zones", response_model=list[SafeZone],
            summary="A resident's safe zones")
async def get_zones(resident_id: str, conn: ConnDep, user: CurrentUser) -> list[SafeZone]:
    """404 when the resident is absent or outside your scope."""
    await load_resident(conn, user, resident_id)
    rows = await fetch_all(conn, "SELECT name, lat, lon, radius_m, polygon FROM safe_zones WHERE resident_id = %s"
                                 " ORDER BY id", (resident_id,))
    return [SafeZone(**{k: v for k, v in r.items() if v is not None}) for r in rows]


@router.put("/api/residents/{resident_id}/safe-zones", response_model=list[SafeZone],
            dependencies=[require_roles("admin", "operator", "community_worker")],
            summary="Replace a resident's safe zones")
async def put_zones(resident_id: str, body: SafeZones, conn: ConnDep, user: CurrentUser, hub: HubDep
                    ) -> list[SafeZone]:
    """Takes effect at once on this hub; other workers reload safe zones every five minutes."""
    await load_resident(conn, user, resident_id)
    await conn.execute("DELETE FROM safe_zones WHERE resident_id = %s", (resident_id,))
    for z in body.zones:
        await conn.execute(
            "INSERT INTO safe_zones (resident_id, name, lat, lon, radius_m, polygon) VALUES (%s, %s, %s, %s, %s, %s)",
            (resident_id, z.name, z.lat, z.lon, z.radius_m, Jsonb(z.polygon) if z.polygon else None))
    await record(conn, user, "resident.safe_zones", f"resident:{resident_id}", {"count": len(body.zones)})
    await conn.commit()
    await hub.geofences.refresh()
    return body.zones

"""The platform overview for a command centre's wall screen: elders, devices, alerts, answer times, visits, a map."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from hub.api.deps import ConnDep, CurrentUser, require_roles
from hub.api.routes.devices import LOW_BATTERY, OFFLINE_AFTER
from hub.api.routes.visits import VISIT_FLAG, week_start
from hub.api.schemas import fetch_all
from hub.users import scope_filter

router = APIRouter(prefix="/api/overview", tags=["overview"])

# The platform's day and week follow China Standard Time, as the visit week does.
_TODAY = "(date_trunc('day', now() AT TIME ZONE 'Asia/Shanghai') AT TIME ZONE 'Asia/Shanghai')"
_OFFLINE = f"(s.online IS FALSE OR s.last_seen IS NULL OR s.last_seen < now() - interval '{OFFLINE_AFTER}')"
_SEVERITIES = ("critical", "high", "medium", "low")


class Figures(BaseModel):
    """The overview's figures for the whole scope or for one community."""

    elders: int = 0
    devices: int = 0
    devices_online: int = 0
    devices_offline: int = 0
    devices_low_battery: int = 0
    open_by_severity: dict[str, int] = {}
    today_by_type: dict[str, int] = {}
    ack_median_s: float | None = None
    ack_p95_s: float | None = None
    acked_today: int = 0
    visits_due: int = 0
    visits_done: int = 0
    visit_rate: float | None = None


class Community(Figures):
    """One community's figures."""

    path: str
    name: str | None


class DayCount(BaseModel):
    """Alerts created on one day (China Standard Time), by severity."""

    day: date
    by_severity: dict[str, int]


class MapAlert(BaseModel):
    """An open alert where it is (its reported position, else the elder's home)."""

    id: int
    type: str
    severity: str
    lat: float
    lon: float
    resident_name: str
    region_path: str
    acknowledged: bool


class Outline(BaseModel):
    """A community's outline ([lon, lat] points), where one is on file."""

    path: str
    name: str | None
    polygon: list[list[float]]


class Overview(BaseModel):
    """Everything the overview page draws, in the caller's scope."""

    generated_at: datetime
    week_start: date
    total: Figures
    communities: list[Community]
    last_7_days: list[DayCount]
    map_alerts: list[MapAlert]
    outlines: list[Outline]


async def _per_community(conn: ConnDep, sql: str, params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["path"]: r for r in await fetch_all(conn, sql, params)}


@router.get("", response_model=Overview, dependencies=[require_roles("admin", "operator", "community_worker")],
            summary="Platform overview: figures in total and per community, alerts of the last 7 days, a map")
async def overview(conn: ConnDep, user: CurrentUser) -> Overview:
    """Counts are computed in the database per community and summed here; the map lists at most 500 open alerts."""
    hw, hp = scope_filter(user, "h.region_path", "r.id")
    aw, ap = scope_filter(user, "a.region_path", "a.resident_id")
    ws = week_start(None)
    elders = await _per_community(conn, "SELECT h.region_path AS path, count(*) AS elders,"  # noqa: S608
                                  " count(*) FILTER (WHERE %(flag)s = ANY(r.risk_flags)) AS visits_due"
                                  f" FROM residents r JOIN households h ON h.id = r.household_id WHERE {hw}"
                                  " GROUP BY 1", {**hp, "flag": VISIT_FLAG})
    visits = await _per_community(
        conn, "SELECT h.region_path AS path, count(DISTINCT v.resident_id) AS visits_done FROM visits v"  # noqa: S608
        " JOIN residents r ON r.id = v.resident_id JOIN households h ON h.id = r.household_id"
        " WHERE v.outcome <> 'not_home' AND %(flag)s = ANY(r.risk_flags)"
        " AND v.visited_at >= (%(ws)s::date::timestamp AT TIME ZONE 'Asia/Shanghai')"
        f" AND v.visited_at < (%(ws)s::date::timestamp AT TIME ZONE 'Asia/Shanghai') + interval '7 days' AND {hw}"
        " GROUP BY 1", {**hp, "flag": VISIT_FLAG, "ws": ws})
    gear = await _per_community(
        conn, "SELECT h.region_path AS path, count(*) AS devices,"  # noqa: S608
        f" count(*) FILTER (WHERE NOT {_OFFLINE}) AS devices_online, count(*) FILTER (WHERE {_OFFLINE}) AS"
        f" devices_offline, count(*) FILTER (WHERE s.battery < {LOW_BATTERY}) AS devices_low_battery"
        " FROM devices d LEFT JOIN residents r ON r.id = d.resident_id"
        " JOIN households h ON h.id = COALESCE(d.household_id, r.household_id)"
        f" LEFT JOIN device_status s ON s.device_id = d.id WHERE d.status = 'active' AND {hw} GROUP BY 1", hp)
    open_rows = await fetch_all(conn, "SELECT a.region_path AS path, a.severity, count(*) AS n FROM alerts a"  # noqa: S608
                                f" WHERE a.closed_at IS NULL AND {aw} GROUP BY 1, 2", ap)
    today_rows = await fetch_all(conn, "SELECT a.region_path AS path, a.type, count(*) AS n FROM alerts a"  # noqa: S608
                                 f" WHERE a.created_at >= {_TODAY} AND {aw} GROUP BY 1, 2", ap)
    ack_sql = ("SELECT {group} count(*) AS acked_today,"  # noqa: S608 - fragments are ours
               " percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM a.acknowledged_at - a.created_at))"
               " AS ack_median_s,"
               " percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM a.acknowledged_at - a.created_at))"
               f" AS ack_p95_s FROM alerts a WHERE a.created_at >= {_TODAY} AND a.acknowledged_at IS NOT NULL"
               f" AND {aw} {{by}}")
    acks = await _per_community(conn, ack_sql.format(group="a.region_path AS path,", by="GROUP BY 1"), ap)
    total_ack = (await fetch_all(conn, ack_sql.format(group="", by=""), ap))[0]
    gw, gp = scope_filter(user, "g.path", "NULL")
    names = {r["path"]: r["name"] for r in await fetch_all(
        conn, f"SELECT g.path, g.name FROM regions g WHERE g.level = 'community' AND {gw}", gp)}  # noqa: S608

    paths = sorted(set(elders) | set(gear) | {r["path"] for r in open_rows} | {r["path"] for r in today_rows})
    communities: list[Community] = []
    for path in paths:
        c = Community(path=path, name=names.get(path))
        for source in (elders, visits, gear, acks):
            for k, v in source.get(path, {}).items():
                if k != "path":
                    setattr(c, k, v)
        c.open_by_severity = {r["severity"]: r["n"] for r in open_rows if r["path"] == path}
        c.today_by_type = {r["type"]: r["n"] for r in today_rows if r["path"] == path}
        c.visit_rate = c.visits_done / c.visits_due if c.visits_due else None
        communities.append(c)

    total = Figures()
    for c in communities:
        for k in ("elders", "devices", "devices_online", "devices_offline", "devices_low_battery", "visits_due",
                  "visits_done"):
            setattr(total, k, getattr(total, k) + getattr(c, k))
        for bucket, part in ((total.open_by_severity, c.open_by_severity), (total.today_by_type, c.today_by_type)):
            for k, n in part.items():
                bucket[k] = bucket.get(k, 0) + n
    total.acked_today = total_ack["acked_today"]
    total.ack_median_s, total.ack_p95_s = total_ack["ack_median_s"], total_ack["ack_p95_s"]
    total.visit_rate = total.visits_done / total.visits_due if total.visits_due else None

    days = await fetch_all(
        conn, "SELECT d::date AS day, a.severity, count(a.id) AS n FROM generate_series("  # noqa: S608
        f" (now() AT TIME ZONE 'Asia/Shanghai')::date - 6, (now() AT TIME ZONE 'Asia/Shanghai')::date, '1 day') d"
        " LEFT JOIN alerts a ON (a.created_at AT TIME ZONE 'Asia/Shanghai')::date = d::date"
        f" AND a.created_at > now() - interval '8 days' AND {aw} GROUP BY 1, 2 ORDER BY 1", ap)
    series: dict[date, dict[str, int]] = {}
    for r in days:
        bucket = series.setdefault(r["day"], dict.fromkeys(_SEVERITIES, 0))
        if r["severity"] is not None:
            bucket[r["severity"]] = r["n"]
    points = await fetch_all(
        conn, "SELECT a.id, a.type, a.severity, r.name AS resident_name, a.region_path,"  # noqa: S608
        " a.acknowledged_at IS NOT NULL AS acknowledged,"
        " COALESCE((a.location->>'lat')::float8, h.lat) AS lat, COALESCE((a.location->>'lon')::float8, h.lon) AS lon"
        " FROM alerts a JOIN residents r ON r.id = a.resident_id JOIN households h ON h.id = a.household_id"
        f" WHERE a.closed_at IS NULL AND {aw} ORDER BY a.id DESC LIMIT 500", ap)
    outlines = await fetch_all(conn, "SELECT g.path, g.name, g.outline AS polygon FROM regions g"  # noqa: S608
                               f" WHERE g.outline IS NOT NULL AND {gw} ORDER BY g.path LIMIT 500", gp)
    now = await fetch_all(conn, "SELECT now() AS now")
    return Overview(generated_at=now[0]["now"], week_start=ws, total=total, communities=communities,
                    last_7_days=[DayCount(day=d, by_severity=v) for d, v in sorted(series.items())],
                    map_alerts=[MapAlert(**p) for p in points if p["lat"] is not None and p["lon"] is not None],
                    outlines=[Outline(**o) for o in outlines])

"""CSV exports of alerts and visits: limited to the caller's scope in the query, bounded, and audited."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from hub.api.deps import KNOWN_QUERY, ConnDep, CurrentUser, require_roles
from hub.api.routes.audit import record
from hub.api.schemas import bad_request, fetch_all
from hub.users import User, scope_filter

# A misspelt or unsupported parameter (`end` for `to`) would otherwise export a different period than asked for.
router = APIRouter(prefix="/api/exports", tags=["exports"], dependencies=[KNOWN_QUERY])
EXPORTERS = require_roles("admin", "operator", "community_worker")
MAX_ROWS = 50_000
MAX_DAYS = 366

From = Annotated[date | None, Query(alias="from", description="first day (default: 30 days ago)")]
To = Annotated[date | None, Query(alias="to", description="last day, inclusive (default: today)")]


def _cell(value: Any) -> Any:
    # A cell starting with = + - @ would run as a formula in a spreadsheet.
    if isinstance(value, str) and value[:1] in {"=", "+", "-", "@", "\t", "\r"}:
        return "'" + value
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    return value


def _csv(rows: list[dict[str, Any]], columns: list[str], name: str) -> Response:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(columns)
    for r in rows:
        writer.writerow([_cell(r[c]) for c in columns])
    # The BOM lets Excel open UTF-8 (Chinese names, addresses) correctly.
    return Response("\ufeff" + buf.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})


def _range(start: date | None, end: date | None) -> tuple[datetime, datetime]:
    today = datetime.now(UTC).date()
    end = end or today
    try:  # year 1 minus 30 days, or 9999-12-31 plus one, is beyond the calendar
        start = start or end - timedelta(days=30)
        after_end = end + timedelta(days=1)
    except OverflowError:
        raise bad_request("dates must lie between 0001-01-31 and 9999-12-30") from None
    if start > end:
        raise bad_request("'from' is after 'to'")
    if (end - start).days > MAX_DAYS:
        raise bad_request(f"export at most {MAX_DAYS} days at a time")
    return (datetime.combine(start, datetime.min.time(), UTC),
            datetime.combine(after_end, datetime.min.time(), UTC))


async def _export(conn: ConnDep, user: User, kind: str, sql: str, params: dict[str, Any],
                  columns: list[str], span: tuple[datetime, datetime]) -> Response:
    rows = await fetch_all(conn, sql, {**params, "start": span[0], "end": span[1], "max": MAX_ROWS})
    first, last = span[0].date(), span[1].date() - timedelta(days=1)  # `to` is inclusive; the query's end is not
    await record(conn, user, f"export.{kind}", f"export:{kind}",
                 {"rows": len(rows), "from": first.isoformat(), "to": last.isoformat()})
    return _csv(rows, columns, f"{kind}-{first}-{last}.csv")


@router.get("/alerts.csv", dependencies=[EXPORTERS], summary="Alerts in your scope as CSV (audited)",
            response_class=Response, responses={200: {"content": {"text/csv": {}}}})
async def export_alerts(conn: ConnDep, user: CurrentUser, start: From = None, end: To = None) -> Response:
    """At most 50 000 rows and 366 days."""
    where, params = scope_filter(user, "a.region_path", "a.resident_id")
    columns = ["id", "created_at", "type", "severity", "resident_id", "household_id", "region_path",
               "acknowledged_at", "acknowledged_by", "closed_at", "resolution", "assigned_to", "trigger_count",
               "seconds_to_ack"]
    sql = ("SELECT a.id, a.created_at, a.type, a.severity, a.resident_id, a.household_id, a.region_path,"  # noqa: S608
           " a.acknowledged_at, a.acknowledged_by, a.closed_at, a.resolution, a.assigned_to, a.trigger_count,"
           " round(extract(epoch FROM a.acknowledged_at - a.created_at)::numeric, 1) AS seconds_to_ack"
           f" FROM alerts a WHERE {where} AND a.created_at >= %(start)s AND a.created_at < %(end)s"
           " ORDER BY a.id LIMIT %(max)s")
    return await _export(conn, user, "alerts", sql, params, columns, _range(start, end))


@router.get("/visits.csv", dependencies=[EXPORTERS], summary="Home visits in your scope as CSV (audited)",
            response_class=Response, responses={200: {"content": {"text/csv": {}}}})
async def export_visits(conn: ConnDep, user: CurrentUser, start: From = None, end: To = None) -> Response:
    """At most 50 000 rows and 366 days."""
    where, params = scope_filter(user, "h.region_path", "r.id")
    columns = ["id", "visited_at", "resident_id", "region_path", "visitor_id", "outcome", "notes"]
    sql = ("SELECT v.id, v.visited_at, v.resident_id, h.region_path, v.visitor_id, v.outcome, v.notes"  # noqa: S608
           " FROM visits v JOIN residents r ON r.id = v.resident_id JOIN households h ON h.id = r.household_id"
           f" WHERE {where} AND v.visited_at >= %(start)s AND v.visited_at < %(end)s ORDER BY v.id LIMIT %(max)s")
    return await _export(conn, user, "visits", sql, params, columns, _range(start, end))

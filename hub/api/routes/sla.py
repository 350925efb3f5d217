"""Service-level figures of alert handling, per community, within the user's scope."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, status

from alerts.sla import DEFAULT_SEVERITIES, sla_report
from hub.api.deps import ConnDep, CurrentUser, require_roles
from hub.users import scope_filter

router = APIRouter(prefix="/api/sla", tags=["sla"])


@router.get("", summary="SLA figures per community",
            dependencies=[require_roles("admin", "operator", "community_worker")])
async def sla(
    conn: ConnDep,
    user: CurrentUser,
    since: Annotated[datetime | None, Query(description="start (default: 30 days ago)")] = None,
    until: Annotated[datetime | None, Query(description="end, exclusive (default: now)")] = None,
    community: Annotated[str | None, Query(max_length=200, description="region path (community or above)")] = None,
    severity: Annotated[list[Literal["critical", "high", "medium", "low"]] | None,
                        Query(description="severities counted (default: critical)")] = None,
) -> dict[str, Any]:
    """Time to first notification and to acknowledgement (p50/p95), shares within 60/180 s, dispatches, false alarms."""
    until = until or datetime.now(UTC)
    try:
        since = since or until - timedelta(days=30)
    except OverflowError:  # an 'until' in the first month of year 1
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "until is too early") from None
    if since.tzinfo is None or until.tzinfo is None:
        since, until = since.replace(tzinfo=since.tzinfo or UTC), until.replace(tzinfo=until.tzinfo or UTC)
    if since >= until:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "since must be before until")
    report = await sla_report(conn, since, until, community, scope_filter(user, "a.region_path", "a.resident_id"),
                              severity or list(DEFAULT_SEVERITIES))
    return {"since": since, "until": until, "community": community, "severities": severity or DEFAULT_SEVERITIES,
            "targets": {"within_60s": 0.975, "within_180s": 0.99},
            "communities": [s.as_dict() for s in report]}

"""A resident's activity and vital signs over time, bucketed in the database.

Windows are whole buckets (the first hour or day is complete). On the Community edition the series come
from the real-time continuous aggregates (hub/storage/rollups.py); elsewhere from the raw tables.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from hub.api.deps import ConnDep, CurrentUser, HubDep
from hub.api.routes.residents import load_resident
from hub.api.schemas import fetch_all
from hub.storage.rollups import Source

router = APIRouter(prefix="/api/history", tags=["history"])

_INTERVAL = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
# Most buckets one request returns: 31 days of hours.
_MAX_BUCKETS = 24 * 31


class ActivityBucket(BaseModel):
    """Device events in one bucket, in total and by kind."""

    ts: datetime
    events: int
    by_kind: dict[str, int]


class VitalBucket(BaseModel):
    """One metric in one bucket."""

    ts: datetime
    metric: str
    avg: float
    min: float
    max: float
    n: int


def _source(hub: Any) -> Source:
    """The continuous aggregates when the server has them, else the raw tables."""
    return hub.caps.rollups if hub.caps is not None else Source(timescaledb=False)


def _window(days: int, bucket: str) -> int:
    return min(days, _MAX_BUCKETS // (24 if bucket == "hour" else 1))


@router.get("/{resident_id}/activity", response_model=list[ActivityBucket],
            summary="Device events per hour or day (default: 7 days by day)")
async def activity(
    resident_id: str, conn: ConnDep, user: CurrentUser, hub: HubDep,
    days: Annotated[int, Query(ge=1, le=90)] = 7,
    bucket: Annotated[Literal["hour", "day"], Query()] = "day",
) -> list[ActivityBucket]:
    """Empty buckets are omitted; at most 745 buckets (744 whole ones and the current one)."""
    await load_resident(conn, user, resident_id)
    rows = await fetch_all(conn, _source(hub).activity_sql(bucket),
                           {"rid": resident_id, "span": timedelta(days=_window(days, bucket))})
    out: dict[datetime, ActivityBucket] = {}
    for r in rows:
        entry = out.setdefault(r["bucket"], ActivityBucket(ts=r["bucket"], events=0, by_kind={}))
        entry.events += r["n"]
        entry.by_kind[r["kind"]] = r["n"]
    return list(out.values())


@router.get("/{resident_id}/vitals", response_model=list[VitalBucket],
            summary="Vital signs (heart rate, blood pressure, SpO2...) per hour or day")
async def vitals(
    resident_id: str, conn: ConnDep, user: CurrentUser, hub: HubDep,
    metric: Annotated[str | None, Query(max_length=40, description="one metric, e.g. heart_rate")] = None,
    days: Annotated[int, Query(ge=1, le=90)] = 7,
    bucket: Annotated[Literal["hour", "day"], Query()] = "hour",
) -> list[VitalBucket]:
    """Ordered by time, then metric; at most 745 buckets per metric (744 whole ones and the current one)."""
    await load_resident(conn, user, resident_id)
    params: dict[str, Any] = {"rid": resident_id, "span": timedelta(days=_window(days, bucket)), "metric": metric}
    rows = await fetch_all(conn, _source(hub).vitals_sql(bucket, metric is not None), params)
    return [VitalBucket(**r) for r in rows]

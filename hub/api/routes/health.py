"""Liveness and readiness of the hub and its dependencies, reported separately.

- `/health/live`: the process serves requests (its event loop runs). A failing liveness probe
  means "restart me"; a database or broker outage is *not* a reason, so it never fails for one.
- `/health/ready`: the hub can take and store messages now (database and broker both up).
  A failing readiness probe means "do not send traffic / page the operator", not "restart".
- `/health`: both, plus the detail (outages, last outage length, ingestion counters, and under
  `timescaledb` the edition and the compression, retention jobs and continuous aggregates read from
  the server at start-up and every hour; docs/operations.md). With several
  workers or a separate escalation process, also each other process's last snapshot and the
  counters summed over all of them.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from hub.api.deps import HubDep
from hub.worker_stats import combined

router = APIRouter(tags=["health"])


@router.get("/health", summary="Readiness, liveness and the state of the database, broker and ingestion")
async def health(hub: HubDep) -> JSONResponse:
    """200 when ready, 503 when a dependency is down (the body says which); `live` is true either way."""
    body: dict[str, Any] = hub.health_report()
    body["liveness"] = {"live": True}
    body["readiness"] = hub.health.readiness()
    if hub.other_workers.expected:
        others = await hub.other_workers.refresh()
        body["workers"] = hub.other_workers.report()
        body["workers_ok"] = all(hub.other_workers.up().values())
        body["ingest_all_workers"] = {"counters": dict(sorted(combined(hub.health.counters, others).items()))}
    return JSONResponse(body, status_code=200 if body["ready"] else 503)


@router.get("/health/ready", summary="Readiness: the database and the broker are both reachable")
async def ready(hub: HubDep) -> JSONResponse:
    """200 when ready, else 503 with the component that is down and why."""
    body = hub.health.readiness()
    return JSONResponse(body, status_code=200 if body["ready"] else 503)


@router.get("/health/live", summary="Liveness: the process is serving")
async def live() -> dict[str, bool]:
    """Always 200 while the event loop runs, whatever the dependencies do."""
    return {"live": True}

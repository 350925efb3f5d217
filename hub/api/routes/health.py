"""Liveness and readiness of the hub and its dependencies."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from hub.api.deps import HubDep

router = APIRouter(tags=["health"])


@router.get("/health", summary="State of the database, the broker, TimescaleDB and ingestion")
async def health(hub: HubDep) -> JSONResponse:
    """200 when ready, 503 when a dependency is down (the body says which)."""
    body: dict[str, Any] = hub.health_report()
    return JSONResponse(body, status_code=200 if body["ready"] else 503)


@router.get("/health/live", summary="Liveness: the process is serving")
async def live() -> dict[str, bool]:
    """Always 200 while the event loop runs."""
    return {"live": True}

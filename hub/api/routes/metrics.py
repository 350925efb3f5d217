"""GET /metrics: Prometheus text exposition of the hub's counters, queues, latencies and outages.

Open without a login, like /health: it carries only aggregate counts whose labels come from closed
sets (reasons, alert types, channel and step names), never ids or personal data, and a scraper
cannot refresh an expiring login token. Where the API listens beyond loopback, let only the
Prometheus server reach /metrics (docs/operations.md, "Observability").
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from hub.api.deps import HubDep
from hub.metrics import CONTENT_TYPE, Exporter

router = APIRouter(tags=["health"])


@router.get("/metrics", summary="Prometheus metrics (text exposition format)", response_class=Response)
async def metrics(request: Request, hub: HubDep) -> Response:
    """Counters and gauges derived at scrape time; the database summary is cached for 10 s."""
    exporter: Exporter | None = getattr(request.app.state, "metrics", None)
    if exporter is None:
        exporter = request.app.state.metrics = Exporter(hub)
    return Response(await exporter.render(), media_type=CONTENT_TYPE)

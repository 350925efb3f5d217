"""Escalation policies and channel routes in effect, and a check for a policy file before deploying it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, status

from alerts.policy import check_channels, parse_policies
from hub.api.deps import HubDep, require_roles
from hub.errors import ConfigError

router = APIRouter(prefix="/api/policies", tags=["policies"])


@router.get("", summary="Policies, routes and channels in effect",
            dependencies=[require_roles("admin", "operator")])
async def policies(hub: HubDep) -> dict[str, Any]:
    """First matching policy wins; channel configs are not shown (they hold secrets)."""
    config = hub.engine.config
    return {
        "policies": [p.model_dump() for p in config.policies],
        "routes": config.routes,
        "channels": {name: channel.key for name, channel in sorted(config.channels.items())},
        "quiet_hours": None if config.quiet is None else {
            "start": config.quiet.start.isoformat("minutes"), "end": config.quiet.end.isoformat("minutes"),
            "timezone": str(config.quiet.tz)},
    }


@router.post("/validate", summary="Check a policy document against the configured channels",
             dependencies=[require_roles("admin", "operator")])
async def validate(document: dict[str, Any], hub: HubDep) -> dict[str, Any]:
    """422 with the ConfigError message (naming the policy, step and field) when it would not load."""
    try:
        parsed = parse_policies(document, "policy document")
        check_channels(parsed, hub.engine.config.routes, hub.engine.config.channels)
    except ConfigError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(err)) from None
    return {"ok": True, "policies": [p.name for p in parsed]}

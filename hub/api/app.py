"""Builds the FastAPI application around a running hub."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.types import ASGIApp

from hub.api.body_limit import BodyLimit
from hub.api.routes import (
    actions,
    alerts,
    audit,
    auth,
    dead_letters,
    devices,
    escalations,
    exports,
    feed,
    health,
    history,
    imports,
    metrics,
    overview,
    policies,
    qr,
    region_outlines,
    regions,
    residents,
    safe_zones,
    sla,
    users,
    visits,
)
from hub.ratelimit import LoginThrottle

if TYPE_CHECKING:
    from hub.service import Hub

log = logging.getLogger(__name__)
DEFAULT_MAX_BODY = 1 << 20
STATIC = Path(__file__).resolve().parent.parent / "dashboard" / "static"

_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    # Scripts only from the hub's own files: the console has no inline script, so an injected one never runs.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; connect-src 'self'; "
    "frame-ancestors 'none'",
}


# Only over HTTPS: a browser that saw it on plain HTTP would refuse the console until it expires.
_HSTS = "max-age=31536000; includeSubDomains"


class SecurityHeaders(BaseHTTPMiddleware):
    """Adds the headers every response should carry."""

    def __init__(self, app: ASGIApp, https: bool = False) -> None:
        super().__init__(app)
        self.headers = {**_SECURITY_HEADERS, **({"Strict-Transport-Security": _HSTS} if https else {})}

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        """Pass through, then decorate."""
        response = await call_next(request)
        for name, value in self.headers.items():
            response.headers.setdefault(name, value)
        return response


def create_app(hub: Hub) -> FastAPI:
    """The API plus the dashboard, wired to one hub."""
    app = FastAPI(
        title="Eldercare hub",
        version="0.1.0",
        description="SOS wristbands, home sensors and escalation for city elder-care platforms.",
    )
    app.state.hub = hub
    app.state.login_throttle = LoginThrottle()
    settings = getattr(hub, "settings", None)  # None when only the routes are inspected
    # Added first, so it runs inside SecurityHeaders and its 413 answers carry the headers too.
    app.add_middleware(BodyLimit, max_bytes=settings.api_max_body_bytes if settings else DEFAULT_MAX_BODY,
                       max_upload_bytes=settings.api_max_upload_bytes if settings else DEFAULT_MAX_BODY)
    app.add_middleware(SecurityHeaders, https=bool(settings and settings.api_https))
    if settings is not None and settings.cors_origin_list:
        # Bearer tokens, not cookies: no credentials mode, and only the listed origins.
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origin_list, allow_credentials=False,
                           allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"], max_age=600)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        # Say what was wrong with the request, without echoing stack traces or internals.
        problems = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in err.errors()]
        return JSONResponse({"detail": problems}, status_code=422)

    @app.exception_handler(psycopg.DataError)
    async def unstorable(request: Request, err: psycopg.DataError) -> JSONResponse:
        # A value the database cannot hold (a NUL byte in text, a number or date beyond its range) is the
        # client's mistake even though only the query finds it.
        log.warning("refused unstorable input on %s %s: %s", request.method, request.url.path, type(err).__name__)
        return JSONResponse({"detail": "a value cannot be stored: NUL byte, or a number or date out of range"},
                            status_code=422)

    @app.exception_handler(Exception)
    async def crashed(request: Request, err: Exception) -> JSONResponse:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=err)
        return JSONResponse({"detail": "internal error; see the hub log"}, status_code=500)

    for module in (health, metrics, auth, alerts, regions, residents, devices, history, visits, users, feed, audit,
                   exports, dead_letters, escalations, policies, sla, safe_zones, actions, imports, overview, qr,
                   region_outlines):
        app.include_router(module.router)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/console")

    @app.get("/console", include_in_schema=False)
    async def console() -> FileResponse:
        return FileResponse(STATIC / "console.html")

    return app

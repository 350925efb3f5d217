"""Login (OAuth2 password flow) and logout."""

from __future__ import annotations

import asyncio
import math
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from hub.api.deps import ConnDep, CurrentUser, HubDep, oauth2
from hub.ratelimit import LoginThrottle
from hub.users import DEMO_ACCOUNTS, AuthError, login, logout

router = APIRouter(prefix="/api/auth", tags=["auth"])
# Longer usernames cannot exist (see UserIn); counting only this much keeps a sprayer's keys small.
_USERNAME_KEY = 60


class Token(BaseModel):
    """A bearer token and when it expires."""

    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int


class Me(BaseModel):
    """The logged-in user."""

    id: int
    username: str
    role: str
    scope_path: str | None
    resident_id: str | None
    display_name: str


@router.post("/token", response_model=Token, summary="Log in with username and password (form fields)")
async def token(form: Annotated[OAuth2PasswordRequestForm, Depends()], conn: ConnDep, hub: HubDep,
                request: Request) -> Token:
    """Issue a bearer token; wrong credentials get 401 without saying which part was wrong.

    Repeated failures from one address make that address wait before trying the same user again (429 with
    Retry-After); the user can still log in from anywhere else, only a little slower while under attack.
    """
    throttle: LoginThrottle = request.app.state.login_throttle
    who = form.username[:_USERNAME_KEY]
    # The socket's peer, or the client a trusted proxy names (ELDERCARE_API_TRUSTED_PROXIES; see service.py).
    address = request.client.host if request.client else "unknown"
    wait = throttle.retry_after(who, address)
    if wait is not None:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "too many failed logins from here; wait and retry",
                            headers={"Retry-After": str(math.ceil(wait))})
    await asyncio.sleep(throttle.slowdown(who))
    ttl = timedelta(minutes=hub.settings.token_ttl_minutes)
    try:
        if not hub.settings.demo and DEMO_ACCOUNTS.get(form.username) == form.password:
            # Well-known demo passwords left in a database must not open a hub that runs for real.
            raise AuthError("incorrect username or password")
        value, _ = await login(conn, form.username, form.password, ttl)
    except AuthError as err:
        throttle.failed(who, address)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(err),
                            headers={"WWW-Authenticate": "Bearer"}) from None
    throttle.succeeded(who, address)
    return Token(access_token=value, expires_in=int(ttl.total_seconds()))


@router.get("/me", response_model=Me, summary="Who am I")
async def me(user: CurrentUser) -> Me:
    """The current user and their scope."""
    return Me(id=user.id, username=user.username, role=user.role, scope_path=user.scope_path,
              resident_id=user.resident_id, display_name=user.display_name)


@router.post("/logout", status_code=204, summary="Revoke the current token")
async def do_logout(user: CurrentUser, conn: ConnDep, token: Annotated[str | None, Depends(oauth2)]) -> None:
    """The token stops working at once."""
    if token:
        await logout(conn, token)

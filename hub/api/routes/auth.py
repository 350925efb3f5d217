"""Login (OAuth2 password flow) and logout."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from hub.api.deps import ConnDep, CurrentUser, HubDep, oauth2
from hub.ratelimit import SlidingWindow
from hub.users import AuthError, login, logout

router = APIRouter(prefix="/api/auth", tags=["auth"])
# Per client address, on top of the per-username limit: stops one host spraying many usernames.
IP_LOGINS_PER_MINUTE = 60


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
    """Issue a bearer token; wrong credentials get 401 without saying which part was wrong."""
    if not hasattr(request.app.state, "ip_login_limiter"):
        request.app.state.ip_login_limiter = SlidingWindow(IP_LOGINS_PER_MINUTE, 60.0)
    client = request.client.host if request.client else "unknown"
    if not request.app.state.ip_login_limiter.allow(client) or not hub.login_limiter.allow(form.username):
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "too many login attempts; wait a minute")
    ttl = timedelta(minutes=hub.settings.token_ttl_minutes)
    try:
        value, _ = await login(conn, form.username, form.password, ttl)
    except AuthError as err:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(err),
                            headers={"WWW-Authenticate": "Bearer"}) from None
    hub.login_limiter.reset(form.username)
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

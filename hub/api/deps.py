"""Dependencies shared by the routes: the hub context, the database connection and the current user."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import OAuth2PasswordBearer
from psycopg import AsyncConnection

from hub.users import AuthError, User, user_for_token

if TYPE_CHECKING:
    from hub.service import Hub

oauth2 = OAuth2PasswordBearer(tokenUrl="/api/auth/token", auto_error=False)


def get_hub(request: Request) -> Hub:
    """The running hub this app serves."""
    return request.app.state.hub


HubDep = Annotated["Hub", Depends(get_hub)]


async def get_conn(hub: HubDep) -> AsyncIterator[AsyncConnection[Any]]:
    """A pooled connection; commits when the route returns, rolls back on error."""
    async with hub.pool.connection() as conn:
        yield conn


# scope="function": the commit happens when the route returns, before the response is sent, so a
# client that gets 201 and immediately reads back sees its own write.
ConnDep = Annotated[AsyncConnection[Any], Depends(get_conn, scope="function")]


async def current_user(conn: ConnDep, token: Annotated[str | None, Depends(oauth2)]) -> User:
    """The user behind the bearer token, or 401."""
    if not token:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "not authenticated",
                            headers={"WWW-Authenticate": "Bearer"})
    try:
        return await user_for_token(conn, token)
    except AuthError as err:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(err),
                            headers={"WWW-Authenticate": "Bearer"}) from None


CurrentUser = Annotated[User, Depends(current_user)]


def require_roles(*roles: str) -> Any:
    """A dependency that admits only the given roles (403 otherwise)."""

    async def check(user: CurrentUser) -> User:
        if user.role not in roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {user.role} may not do this")
        return user

    return Depends(check)


def _query_names(dependant: Dependant) -> set[str]:
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def _known_query(request: Request) -> None:
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    known = _query_names(route.dependant)
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        expected = ", ".join(sorted(known)) or "none"
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, [
            {"loc": ["query", name], "msg": f"unknown query parameter; this route takes: {expected}"}
            for name in unknown])


KNOWN_QUERY = Depends(_known_query)
"""Refuses query parameters the route does not declare (422), where a silently ignored one would mislead."""
